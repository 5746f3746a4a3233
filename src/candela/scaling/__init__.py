"""The elastic cluster: autoscaling policies, the cluster's actuators and the simulator.

Pure, typed and Airflow-free; the ``cluster_autoscaler`` DAG only wires it:

* :mod:`.config` – the scaling configuration (node groups, cooldowns, budget), checked at load
* :mod:`.policy` – the cluster state a policy sees, the ``threshold`` and ``demand`` policies and
  their decisions (why, inputs)
* :mod:`.simulator` – workload traces and a discrete-event model of the cluster
  (``candela scale simulate``)
* :mod:`.cloud` – the actuators: OpenStack servers through openstacksdk, the Kubernetes cluster
  through the official client (join, label, taint, cordon, drain, delete)
* :mod:`.autoscaler` – one pass: observe, decide, act (or plan only), record
"""
