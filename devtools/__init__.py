"""Developer tooling: Azurite, the local app process, `make run` and `make test`. Not deployed."""
