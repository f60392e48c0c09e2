"""config: process settings from the environment, repo settings from docgen.yml."""

from __future__ import annotations

import pytest

from bot.config import RepoConfig, Settings, load_repo_config, price_for, read_repo_config_file
from bot.docstrings.models import Style


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "DOCGEN_MODEL",
        "AZURE_OPENAI_ENDPOINT",
        "AZURE_OPENAI_API_KEY",
        "AZURE_OPENAI_DEPLOYMENT",
        "DOCGEN_TOKEN_BUDGET",
        "DOCGEN_PROVIDER",
        "DOCGEN_DATA_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


class TestSettings:
    def test_defaults_select_the_offline_provider(self, clean_env):
        s = Settings()
        assert s.provider_kind() == "offline"
        assert s.model_name() == "offline"
        assert s.docgen_token_budget == 20_000

    def test_openai_key_selects_openai_and_never_prints(self, clean_env, monkeypatch):
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-value")
        s = Settings()
        assert s.provider_kind() == "openai"
        assert "sk-test-secret-value" not in repr(s)
        assert "sk-test-secret-value" not in str(s.model_dump())

    def test_azure_wins_when_fully_configured(self, clean_env, monkeypatch):
        monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://example.openai.azure.com")
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", "az-secret")
        assert Settings().provider_kind() == "azure"

    def test_dotenv_file_is_read(self, clean_env, tmp_path):
        (tmp_path / ".env").write_text("DOCGEN_TOKEN_BUDGET=1234\n")
        assert Settings().docgen_token_budget == 1234

    def test_bad_budget_is_a_validation_error(self, clean_env, monkeypatch):
        monkeypatch.setenv("DOCGEN_TOKEN_BUDGET", "-5")
        with pytest.raises(ValueError):
            Settings()

    def test_worker_metrics_port_defaults_next_to_the_web_port_and_0_turns_it_off(
        self, clean_env, monkeypatch
    ):
        monkeypatch.delenv("DOCGEN_METRICS_PORT", raising=False)
        assert Settings().docgen_metrics_port == 8001
        monkeypatch.setenv("DOCGEN_METRICS_PORT", "0")
        assert Settings().docgen_metrics_port == 0
        monkeypatch.setenv("DOCGEN_METRICS_PORT", "9464")
        assert Settings().docgen_metrics_port == 9464
        for bad in ("-1", "65536", "metrics"):
            monkeypatch.setenv("DOCGEN_METRICS_PORT", bad)
            with pytest.raises(ValueError):
                Settings()


def test_prices_by_longest_prefix():
    assert price_for("gpt-4o-mini-2024-07-18").prompt == 0.15
    assert price_for("gpt-4o-2024-08-06").prompt == 2.50
    assert price_for("my-local-llama") is None


class TestRepoConfig:
    def test_missing_file_gives_defaults(self):
        loaded = load_repo_config(None)
        assert loaded.config == RepoConfig() and loaded.errors == ()

    def test_valid_file(self):
        loaded = load_repo_config(b"style: numpy\nbudget: 500\nexclude: tests/*\n")
        assert loaded.errors == ()
        assert loaded.config.forced_style() == Style.NUMPY
        assert loaded.config.budget == 500
        assert loaded.config.exclude == ("tests/*",)

    def test_invalid_yaml_names_the_line_and_uses_defaults(self):
        loaded = load_repo_config(b"style: numpy\nbudget: [1,\n")
        assert loaded.config == RepoConfig()
        assert "invalid YAML at line" in loaded.errors[0]

    def test_bad_values_are_dropped_one_by_one(self):
        loaded = load_repo_config(b"style: fancy\nbudget: 300\nskip_tests: maybe\ntypo_key: 1\n")
        assert loaded.config.budget == 300  # the good value survives
        assert loaded.config.style == "auto"
        text = "\n".join(loaded.errors)
        assert "style" in text and "skip_tests" in text and "typo_key" in text
        assert "using default 'auto'" in text

    @pytest.mark.parametrize(
        ("text", "says"),
        [
            (b"budget: lots\n", "using the default: DOCGEN_TOKEN_BUDGET (20,000 tokens"),
            (b"fork_budget: -1\n", "using the default: DOCGEN_FORK_TOKEN_BUDGET (5,000 tokens"),
            (b"coverage_threshold: high\n", "using the default: no threshold"),
        ],
        ids=["budget", "fork_budget", "coverage_threshold"],
    )
    def test_a_bad_value_with_no_fixed_default_names_what_is_used(self, text, says):
        loaded = load_repo_config(text)
        assert loaded.config == RepoConfig()
        assert says in loaded.errors[0]
        assert "None" not in loaded.errors[0]

    def test_top_level_must_be_a_mapping(self):
        loaded = load_repo_config(b"- a\n- b\n")
        assert loaded.config == RepoConfig() and "mapping" in loaded.errors[0]

    def test_include_exclude(self):
        cfg = RepoConfig(exclude=("tests/*", "*_pb2.py"))
        assert cfg.wants("pkg/mod.py")
        assert not cfg.wants("tests/test_mod.py")
        assert not cfg.wants("pkg/api_pb2.py")
        assert not cfg.wants("README.md")

    def test_read_from_checkout(self, tmp_path):
        (tmp_path / ".github").mkdir()
        (tmp_path / ".github" / "docgen.yaml").write_text("skip_private: false\n")
        loaded = read_repo_config_file(tmp_path)
        assert loaded.config.skip_private is False and loaded.source == ".github/docgen.yaml"
