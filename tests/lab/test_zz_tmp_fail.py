def test_fails(lab):
    assert False
