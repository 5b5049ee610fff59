"""The document stream: bluesky's 0MQ Publisher → Proxy → RemoteDispatcher, with msgpack (never pickle)."""
