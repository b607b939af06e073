"""The gate's GX context: in memory, no analytics, no progress bars, and one Data Docs site (ours,
in the run's folder, without GX's how-to buttons)."""

from __future__ import annotations

from pathlib import Path

from great_expectations.data_context import EphemeralDataContext

from hivid.quality.gate import SITE_NAME, _context, run_gate
from hivid.quality.suites import QualityConfig
from tests.quality_batches import batch


def test_context_settings(tmp_path: Path) -> None:
    ctx = _context(tmp_path / "docs")
    assert isinstance(ctx, EphemeralDataContext)
    cfg = ctx.config
    assert cfg.analytics_enabled is False
    assert (cfg.progress_bars.globally, cfg.progress_bars.metric_calculations) == (False, False)
    assert cfg.data_docs_sites == {
        SITE_NAME: {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(tmp_path / "docs"),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    }
    assert [s["site_name"] for s in ctx.get_docs_sites_urls()] == [SITE_NAME]


def test_docs_are_built_in_the_run_folder_without_how_to_buttons(tmp_path: Path) -> None:
    manifest, ann = batch(2)
    result = run_gate(manifest, ann, QualityConfig(), tmp_path / "gate")
    index = result.data_docs_dir / "index.html"
    assert index.is_file()
    html = index.read_text()
    assert "How to Create Expectations" not in html and "how-to" not in html.lower()
    assert any(result.data_docs_dir.glob("validations/**/*.html"))
