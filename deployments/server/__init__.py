"""The model server: a small WSGI app (run by `manage.py serve_models`) that serves active deployments.

Only the model server process imports this package: the portal's web process never loads user models.
"""
