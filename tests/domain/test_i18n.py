import string

from bot.i18n import LOCALES, catalog, normalize_locale, t, won


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_locales_have_the_same_keys_and_placeholders() -> None:
    ko, en = catalog("ko"), catalog("en")
    assert ko, "Korean catalog is empty"
    assert set(ko) == set(en), f"missing in en: {set(ko) - set(en)}; missing in ko: {set(en) - set(ko)}"
    for key in ko:
        assert _fields(ko[key]) == _fields(en[key]), key


def test_translation_and_fallbacks() -> None:
    assert t("menu.get_task", "ko") != t("menu.get_task", "en")
    assert t("task.progress", "en", done=12, earned=won(240)) == "12 done · ₩240 today"
    assert t("no.such.key", "en") == "no.such.key"
    assert normalize_locale("en-US") == "en"
    assert normalize_locale("ja") == "ko"
    assert normalize_locale(None, "en") == "en"
    assert set(LOCALES) == {"ko", "en"}


def test_won_formats_thousands() -> None:
    assert won(1234567) == "₩1,234,567"
