"""InOrder: answers finishing out of order are released in request order, none twice."""

from gateway.in_order import InOrder


def test_a_late_first_answer_holds_back_the_later_ones() -> None:
    released: list[bytes] = []
    order = InOrder(released.append)
    places = [order.reserve() for _ in range(4)]
    order.fill(places[2], b"c")
    order.fill(places[1], b"b")
    assert released == [] and len(order) == 4
    order.fill(places[0], b"a")
    assert released == [b"a", b"b", b"c"] and len(order) == 1
    order.fill(places[3], b"d")
    assert released == [b"a", b"b", b"c", b"d"] and len(order) == 0


def test_an_answer_at_the_head_goes_out_at_once() -> None:
    released: list[bytes] = []
    order = InOrder(released.append)
    for n in range(3):
        order.fill(order.reserve(), bytes([n]))
        assert released[-1] == bytes([n])
