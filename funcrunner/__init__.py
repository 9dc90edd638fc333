"""A local host for Python v2 Azure Functions apps (the Core Tools can't be installed here).

It serves HTTP, queue and blob triggers of an unchanged `function_app.py`
against real storage (Azurite), following the host's semantics. The product
never imports this package.
"""
