"""The stages as Prefect flows (one per stage) and the parent flow that runs them in DAG order."""
