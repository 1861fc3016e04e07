def test_server_health(server):
    h = server.health()
    assert h["status"] == "ok"
    assert h["service"] == "qldb-local"
