"""Secrets and card data never reach a log line or the event log."""

from connector.redact import MASK, Redactor


def test_secret_keys_and_values_are_masked_everywhere():
    r = Redactor(["sk-live-abcdef", "hunter22"])
    data = {
        "payment": {"credit_card": {"card_number": "4111111111111111", "card_verification_number": "123", "card_expiration_month": 12}},
        "headers": {"Authorization": "Bearer sk-live-abcdef"},
        "note": "token is sk-live-abcdef and password hunter22",
        "order_id": "DEMO-0001",
        "quantity": 3,
    }
    out = r.data(data)
    text = repr(out)
    assert "4111111111111111" not in text and "sk-live-abcdef" not in text and "hunter22" not in text
    assert out["payment"]["credit_card"]["card_number"] == MASK
    assert out["order_id"] == "DEMO-0001" and out["quantity"] == 3
    assert out["payment"]["credit_card"]["card_expiration_month"] == 12


def test_card_numbers_inside_free_text_are_masked():
    assert "4111 1111 1111 1111" not in Redactor().text("customer wrote 4111 1111 1111 1111 in the notes")
    assert Redactor().text("order DEMO-0001 qty 12") == "order DEMO-0001 qty 12"
