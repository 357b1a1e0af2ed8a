"""Stages that read config, touch files, DuckDB or Spark, and call MLflow. Nothing runs at import."""
