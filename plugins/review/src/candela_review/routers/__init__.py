"""The review app's routers, one per kind of resource; ``candela_review.app`` mounts them all
behind Airflow's authentication."""
