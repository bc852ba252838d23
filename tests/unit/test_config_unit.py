"""App options are checked when App(...) is built, by name: TypeError for a wrong type,
ValueError for a value out of range; and they cannot be changed afterwards."""

import dataclasses

import pytest

from blaze_green import App, Config


@pytest.mark.parametrize(
    ("option", "value", "error", "words"),
    [
        ("max_message_size", "1MB", TypeError, "max_message_size must be an int"),
        ("max_message_size", -1, ValueError, "max_message_size must be >= 0"),
        ("max_message_size", 1.5, TypeError, "max_message_size"),
        ("max_message_size", True, TypeError, "max_message_size"),
        ("max_body_size", "10", TypeError, "max_body_size"),
        ("send_queue_size", 0, ValueError, "send_queue_size must be >= 1"),
        ("send_queue_size", None, TypeError, "send_queue_size must be an int"),
        ("max_connections", -5, ValueError, "max_connections"),
        ("ping_interval", -1, ValueError, "ping_interval must be > 0"),
        ("ping_interval", 0, ValueError, "None turns it off"),
        ("ping_interval", "20", TypeError, "ping_interval must be a number of seconds"),
        ("ping_timeout", -0.5, ValueError, "ping_timeout"),
        ("shutdown_timeout", -1, ValueError, "shutdown_timeout must be >= 0"),
        ("shutdown_timeout", None, TypeError, "shutdown_timeout"),
        ("close_timeout", float("nan"), ValueError, "close_timeout"),
        ("coalesce_window", "2ms", TypeError, "coalesce_window"),
        ("allowed_origins", 42, TypeError, "allowed_origins"),
        ("allowed_origins", ["https://a.example", 3], TypeError, "origin strings"),
        ("broker", "http://localhost", ValueError, "redis://host:port/db"),
        ("broker", 6379, TypeError, "broker must be a URL"),
        ("debug", "yes", TypeError, "debug must be True or False"),
    ],
)
def test_bad_options_fail_at_construction_naming_the_option(option, value, error, words):
    with pytest.raises(error) as info:
        App(**{option: value})
    assert words in str(info.value)


def test_unknown_option_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="max_mesage_size"):
        App(max_mesage_size=10)  # type: ignore[call-arg]


def test_good_options_are_kept_and_readable_as_attributes():
    app = App(
        max_message_size=None,
        send_queue_size=5,
        ping_interval=None,
        allowed_origins=["https://a.example"],
        broker="redis://127.0.0.1:6379/0",
        max_connections=0,
    )
    assert app.config.send_queue_size == 5 and app.send_queue_size == 5
    assert app.config.max_message_size is None
    assert app.config.ping_interval is None
    assert app.config.broker == "redis://127.0.0.1:6379/0"
    assert app.config.max_connections == 0
    assert App().config == Config()  # the defaults of App and Config are the same


def test_options_cannot_be_changed_after_construction():
    app = App()
    with pytest.raises(AttributeError, match=r"pass it as App\(ping_interval=\.\.\.\)"):
        app.ping_interval = 5
    with pytest.raises(AttributeError, match="fixed when the App is built"):
        app.config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        app.config.ping_interval = 5  # type: ignore[misc]
    assert app.config.ping_interval == 20.0
    app.anything_else = 1  # other attributes are the user's
    assert app.anything_else == 1


def test_before_open_must_be_callable():
    with pytest.raises(TypeError, match="before_open must be a callable"):
        App(before_open="nope")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("option", "value", "error", "words"),
    [
        ("send_queue_bytes", 0, ValueError, "send_queue_bytes must be >= 1"),
        ("send_queue_bytes", None, TypeError, "send_queue_bytes must be an int"),
        ("send_queue_bytes", "16MiB", TypeError, "send_queue_bytes"),
        ("max_fragments", 0, ValueError, "max_fragments must be >= 1 or None"),
        ("max_fragments", 1.5, TypeError, "max_fragments must be an int or None"),
    ],
)
def test_hardening_options_are_validated(option, value, error, words):
    with pytest.raises(error) as info:
        App(**{option: value})
    assert words in str(info.value)


def test_hardening_defaults():
    app = App()
    assert app.send_queue_bytes == 16 * 1024 * 1024
    assert app.max_fragments == 1024
    assert App(max_fragments=None).max_fragments is None
