"""The health report in a real browser: headless Chromium through selenium.

Every section and every SVG chart is present and visible, the page's script
logs no error, and a full-page screenshot lands in tests/artifacts/report.png
for a person to look at.

The workspace is the benchmark's synthetic one (four months of eight rules
with an agreement drop, fire-rate drops, an auto-disable, tickets and rules
near expiry, so the drift markers are on the page), plus one simulated day of
query log and a published bundle for the residual view.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from benchmarks.bench_report import synthesize
from rulelife import BundleStore, Rule, Store, Workspace
from rulelife.report import SECTIONS, write_report
from rulelife.serving.publish import publish_rules
from rulelife.simulate import simulate_traffic, write_log

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture(scope="module")
def report_file(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    workspace = Workspace.create(root / "ws")
    store = Store.from_workspace(workspace)
    synth = synthesize(store, days=120, rules=8)
    last = synth.start + timedelta(days=synth.days - 1)
    publish_rules(BundleStore(workspace.bundle_dir), [
        Rule(id="order_tracking.where_is_my_order", intent="order_tracking", patterns=["where is my order"],
             owner="test"),
        Rule(id="faq.shipping_cost", intent="faq", patterns=["shipping cost"], owner="test"),
    ])
    write_log(simulate_traffic(start=last, days=1, queries_per_day=1500, seed=1), workspace.log_dir)
    path = write_report(workspace, root / "report.html", store=store).path
    store.dispose()
    return path


@pytest.fixture
def driver(chromium, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, chromedriver = chromium
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(chromedriver))
    yield driver
    driver.quit()


def test_report_renders_in_chromium(driver, report_file):
    from selenium.webdriver.common.by import By

    driver.get(report_file.as_uri())
    assert driver.execute_script("return document.readyState") == "complete"

    for name in SECTIONS:
        section = driver.find_element(By.CSS_SELECTOR, f'section[data-section="{name}"]')
        assert section.is_displayed(), name
        assert section.size["height"] > 20, name

    # Rules that need someone show their charts; the others are folded until clicked open.
    folded = driver.find_elements(By.CSS_SELECTOR, "details.charts:not([open])")
    assert folded and driver.find_elements(By.CSS_SELECTOR, "details.charts[open]")
    assert not folded[0].find_element(By.CSS_SELECTOR, "svg.chart").is_displayed()
    for details in folded:
        summary = details.find_element(By.TAG_NAME, "summary")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", summary)
        summary.click()
    charts = driver.find_elements(By.CSS_SELECTOR, "svg.chart")
    assert len(charts) > 20
    for chart in charts:
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", chart)
        assert chart.is_displayed(), chart.get_attribute("id")
        assert chart.size["width"] > 50 and chart.size["height"] > 20, chart.get_attribute("id")
    kinds = {c.get_attribute("data-chart") for c in charts}
    assert {"agreement", "cusum", "fire-rate", "shadow", "heatmap", "savings", "stacked-bar", "histogram",
            "intervals", "bars", "sparkline"} <= kinds
    # The injected agreement drop is detected and marked on the time line.
    assert driver.find_elements(By.CSS_SELECTOR, "g.marker.change_point")

    # The tooltip script runs: hovering a rule's chart shows that day's numbers.
    from selenium.webdriver.common.action_chains import ActionChains

    agreement = driver.find_element(By.CSS_SELECTOR, 'svg[data-chart="agreement"]')
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", agreement)
    ActionChains(driver).move_to_element(agreement).perform()
    tip = driver.find_element(By.CSS_SELECTOR, "div.tip")
    assert tip.is_displayed() and "agreement" in tip.text

    # The filters: one state at a time, then a piece of a rule id; the count says how many are shown.
    from selenium.webdriver.support.ui import Select

    rows = driver.find_elements(By.CSS_SELECTOR, "tr[data-rule-row]")
    state = Select(driver.find_element(By.CSS_SELECTOR, 'select[data-filter="state"]'))
    value = state.options[1].get_attribute("value")
    state.select_by_value(value)
    shown = [r for r in rows if r.is_displayed()]
    assert shown and all(r.get_attribute("data-state") == value for r in shown)
    assert len(shown) == sum(r.get_attribute("data-state") == value for r in rows)
    count = driver.find_element(By.CSS_SELECTOR, "[data-filter-count]").text
    assert count == f"{len(shown)} of {len(rows)} rules"
    state.select_by_value("")
    first = rows[0].get_attribute("data-rule-row")
    driver.find_element(By.CSS_SELECTOR, 'input[data-filter="text"]').send_keys(first)
    assert [r.get_attribute("data-rule-row") for r in rows if r.is_displayed()] == [first]
    article = driver.find_element(By.CSS_SELECTOR, f'article[data-rule-row="{first}"]')
    assert article.is_displayed()
    driver.find_element(By.CSS_SELECTOR, 'input[data-filter="text"]').clear()
    driver.execute_script("document.querySelector('input[data-filter=\\'text\\']')"
                          ".dispatchEvent(new Event('input'))")
    assert all(r.is_displayed() for r in rows)

    severe = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == [], severe

    ARTIFACTS.mkdir(exist_ok=True)
    driver.execute_script("window.scrollTo(0, 0)")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(int(height), 16000))
    assert driver.save_screenshot(str(ARTIFACTS / "report.png"))
