"""The HTTP gateway: proxy routes, auth and the error contract."""
