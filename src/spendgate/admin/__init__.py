"""The admin API (``/api/v1``): a FastAPI app mounted by the gateway, built lazily on the first
``/api/`` request so the proxy path never pays for FastAPI or pydantic validation.

Modules: ``app`` (factory, error handlers), ``context`` (what the routers read), ``auth``
(viewer from the bearer credential), ``deps`` (FastAPI dependencies), ``errors`` (the error
envelope), one router module per group (``budgets``, ``pricing``, ``keys``, ``usage``,
``models``, ``explain``, ``decisions``) and ``views`` (JSON shapes of routing decisions).
"""
