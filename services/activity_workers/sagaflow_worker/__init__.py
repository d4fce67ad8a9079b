"""The activity worker service: runs activity tasks once per logical step."""
