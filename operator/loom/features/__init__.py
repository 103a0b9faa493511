"""Feature pipeline steps that run as workloads (materialization) or as a library for training
(point-in-time training sets); they compose the Feast and Iceberg drivers."""
