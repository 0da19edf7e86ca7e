from jobs.common.masking import mask_pii


def test_long_digit_runs_and_emails_are_masked_short_values_kept():
    text = "['13800138000', 'test@test.com', '１５６０１８８１６７７', 'TRADE_CLOSED', '0755-1234']"
    masked = mask_pii(text)
    assert masked == (
        "['138******00', 't***@test.com', '１５６******７７', 'TRADE_CLOSED', '0755-1234']"
    )
