from services.gateway.keys import display_secret, hash_secret, new_key_pair


def test_new_keys_have_langfuse_prefixes_and_differ() -> None:
    first, second = new_key_pair(), new_key_pair()
    assert first.public_key.startswith("pk-lf-") and first.secret_key.startswith("sk-lf-")
    assert first != second


def test_hash_depends_on_secret_and_salt() -> None:
    assert hash_secret("sk", "a") == hash_secret("sk", "a")
    assert hash_secret("sk", "a") != hash_secret("sk", "b")
    assert hash_secret("sk", "a") != hash_secret("sk2", "a")


def test_display_secret_hides_the_middle() -> None:
    assert display_secret("sk-lf-1234567890") == "sk-lf-...7890"
