CREATE DATABASE airflow OWNER candela;
