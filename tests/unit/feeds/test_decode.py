from gateway.feeds.decode import FrameDecoder


def test_utf8_and_text_pass_through() -> None:
    decoder = FrameDecoder()
    assert decoder.decode('{"a":"가"}'.encode()) == '{"a":"가"}'
    assert decoder.decode("already text") == "already text"
    assert decoder.redecoded == 0 and decoder.undecodable == 0


def test_euc_kr_payload_is_redecoded() -> None:
    text = '{"type":"ticker","market":"비트코인 원화 마켓 현재가 정보 업데이트"}'
    decoder = FrameDecoder()
    assert decoder.decode(text.encode("euc-kr")) == text
    assert decoder.redecoded == 1


def test_garbage_is_rejected_and_counted() -> None:
    decoder = FrameDecoder(min_confidence=0.9)
    assert decoder.decode(b"\xff\xfe\xfa\x80\x81\x00\x9f") is None
    assert decoder.undecodable == 1
