"""`skyedge label`: frames labelled through the page in a real headless browser become a data set that adapts."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading

import pytest

from skyedge.model_card import read_card


@pytest.fixture
def browser(tmp_path_factory):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    # With --disable-dev-shm-usage Chromium keeps its shared memory in TMPDIR and leaves a folder there per run.
    scratch = tmp_path_factory.mktemp("chromium")
    options.add_argument(f"--user-data-dir={scratch / 'profile'}")
    session = webdriver.Chrome(service=Service(driver, env={**os.environ, "TMPDIR": str(scratch)}), options=options)
    yield session
    session.quit()


def _collected(root, frames, classes):
    """What collect: leaves: frame copies with sidecars holding the model's guess."""
    day = root / "2026-11-23"
    day.mkdir(parents=True)
    for i, f in enumerate(frames):
        guess = classes[i % 2]
        shutil.copy(f, day / f.name)
        probabilities = {c: (0.7 if c == guess else 0.3 / (len(classes) - 1)) for c in classes}
        (day / f.name).with_suffix(".json").write_text(
            json.dumps({"class": guess, "confidence": 0.7, "probabilities": probabilities})
        )
    return root


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_labelling_in_the_browser_writes_a_folder_that_adapts(browser, frame_package, camera_frames, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from skyedge.edge.labelling.adapt import adapt_package
    from skyedge.edge.labelling.label import serve

    classes = read_card(frame_package).classes
    root = _collected(tmp_path / "collected", camera_frames[:12], classes)
    before = _digest(root)
    out = tmp_path / "labelled"
    server = serve(root, out, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    wait = WebDriverWait(browser, 10)
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".card")) == 12)

        def cards():
            return browser.find_elements(By.CSS_SELECTOR, ".card")

        def press(key):
            ActionChains(browser).send_keys(key).perform()

        def copies(name):
            return sorted(p.name for p in (out / name).glob("*")) if (out / name).is_dir() else []

        def shown(labelled):
            # The page redraws its grid when the server answers: wait for that before touching the cards again.
            wait.until(lambda b: f"labelled {labelled} of 12" in b.find_element(By.ID, "progress").text)

        # Three frames to the first class with its number key.
        for i in range(3):
            cards()[i].click()
        press("1")
        wait.until(lambda b: len(copies(classes[0])) == 3)
        shown(3)
        # A range by shift-click, then a class the model does not know, named in the prompt.
        cards()[3].click()
        ActionChains(browser).key_down(Keys.SHIFT).click(cards()[5]).key_up(Keys.SHIFT).perform()
        press("n")
        wait.until(ec.alert_is_present())
        prompt = browser.switch_to.alert
        prompt.send_keys("thin_cloud")
        prompt.accept()
        wait.until(lambda b: len(copies("thin_cloud")) == 3)
        shown(6)
        # A slip, undone.
        cards()[6].click()
        press("2")
        wait.until(lambda b: len(copies(classes[1])) == 1)
        shown(7)
        press("u")
        wait.until(lambda b: len(copies(classes[1])) == 0)
        shown(6)
        # Filters: the model's guess, and the label (none yet, or one class: to check labels made elsewhere).
        Select(browser.find_element(By.ID, "filter-class")).select_by_value(classes[1])
        wait.until(lambda b: len(cards()) == 6)
        Select(browser.find_element(By.ID, "filter-label")).select_by_value("(none)")
        wait.until(lambda b: len(cards()) == 3)  # guessed classes[1], not yet labelled
        Select(browser.find_element(By.ID, "filter-class")).select_by_value("")
        Select(browser.find_element(By.ID, "filter-label")).select_by_value("thin_cloud")
        wait.until(lambda b: len(cards()) == 3)
        cards()[0].click()  # a label checked and found wrong: moved to the first class, gone from this view
        press("1")
        wait.until(lambda b: len(cards()) == 2 and len(copies(classes[0])) == 4)
        press("u")  # and back: adapt below needs three of each
        wait.until(lambda b: len(cards()) == 3 and len(copies(classes[0])) == 3)
    finally:
        server.shutdown()
        server.server_close()
    assert _digest(root.joinpath("2026-11-23")) == {k: v for k, v in before.items()}  # originals untouched
    report = adapt_package(frame_package, out, tmp_path / "adapted")
    assert report["frames"] == 6 and report["added_classes"] == ["thin_cloud"]
    assert read_card(tmp_path / "adapted").classes[-1] == "thin_cloud"


def test_the_store_refuses_bad_names_and_unknown_frames(camera_frames, tmp_path):
    from skyedge.edge.labelling.label import LabelError, LabelStore

    root = _collected(tmp_path / "c", camera_frames[:2], ["clear", "cloudy"])
    store = LabelStore(root, tmp_path / "out")
    with pytest.raises(LabelError, match="class name"):
        store.set_label([0], "../etc")
    with pytest.raises(LabelError, match="no frame"):
        store.set_label([7], "clear")
    store.set_label([0, 1], "clear")
    store.set_label([1], "cloudy")
    assert store.state()["counts"] == {"clear": 1, "cloudy": 1}
    # A second session sees the labels already written.
    assert LabelStore(root, tmp_path / "out").state()["labelled"] == 2
    assert store.thumbnail(0)[:8] == b"\x89PNG\r\n\x1a\n"


def test_cloud_painted_in_the_browser_lands_beside_the_labelled_copy(browser, tmp_path):
    """Paint a frame's cloud in the page: the mask is saved at the frame's own size as adapt reads it, travels with
    the frame when it is relabelled and goes when its label is cleared."""
    import cv2
    import numpy as np
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from skyedge.edge.labelling.label import serve
    from skyedge.painted_cloud import read_mask

    root = tmp_path / "collected"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):  # 300 x 200: the view keeps the frame's aspect, the mask comes back at the frame's size
        cv2.imwrite(str(root / f"frame-{i}.png"), rng.integers(0, 255, (200, 300, 3), dtype=np.uint8))
    out = tmp_path / "labelled"
    server = serve(root, out, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    wait = WebDriverWait(browser, 10)

    def press(*keys):
        for key in keys:
            ActionChains(browser).send_keys(key).perform()

    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".card")) == 2)
        browser.find_elements(By.CSS_SELECTOR, ".card")[0].click()
        press("p")  # not labelled yet: refused, said
        wait.until(lambda b: "label the frame before painting" in b.find_element(By.ID, "error").text)
        press("n")
        alert = browser.switch_to.alert
        alert.send_keys("cloudy")
        alert.accept()
        wait.until(lambda b: (out / "cloudy" / "frame-0.png").is_file())
        wait.until(lambda b: "labelled 1 of 2" in b.find_element(By.ID, "progress").text)
        browser.find_elements(By.CSS_SELECTOR, ".card")[0].click()
        press("p")
        wait.until(lambda b: b.find_element(By.ID, "painter").is_displayed())
        press("x", "f", "c", "]", "]")  # all clear sky, then a wide cloud brush
        canvas = browser.find_element(By.ID, "paint-mask")
        width, height = canvas.size["width"], canvas.size["height"]
        # One fast stroke down the left quarter (offsets from the canvas's centre): the page fills in between.
        stroke = ActionChains(browser).move_to_element_with_offset(canvas, -width // 4, -height // 3).click_and_hold()
        stroke.move_by_offset(0, 2 * height // 3).release().perform()
        wait.until(lambda b: "of the judged sky" in b.find_element(By.ID, "paint-cover").text)
        press("s")
        mask_file = out / "cloudy" / "frame-0.cloud.png"
        wait.until(lambda b: mask_file.is_file() and not b.find_element(By.ID, "painter").is_displayed())
        truth = read_mask(mask_file, (200, 300))  # the frame's own size, or it raises
        assert (truth[:, 75] == 250).mean() > 0.5 and (truth[:, 250:] == 0).all() and (truth != 255).all()
        wait.until(lambda b: "cloud painted" in b.find_elements(By.CSS_SELECTOR, ".card")[0].text)
        # Reopened, the saved mask is shown again; cancelled, nothing changes.
        browser.find_elements(By.CSS_SELECTOR, ".card")[0].click()
        press("p")
        wait.until(lambda b: b.find_element(By.ID, "painter").is_displayed())
        wait.until(lambda b: "cloud" in b.find_element(By.ID, "paint-cover").text)
        assert not browser.find_element(By.ID, "paint-cover").text.startswith("nothing judged")
        saved = mask_file.read_bytes()
        press("\ue00c")  # Escape
        wait.until(lambda b: not b.find_element(By.ID, "painter").is_displayed())
        assert mask_file.read_bytes() == saved
        # Relabelled, the mask goes with the copy; cleared, both go.
        browser.find_elements(By.CSS_SELECTOR, ".card")[0].click()
        press("n")
        alert = browser.switch_to.alert
        alert.send_keys("partly")
        alert.accept()
        wait.until(lambda b: (out / "partly" / "frame-0.cloud.png").is_file() and not mask_file.exists())
        browser.find_elements(By.CSS_SELECTOR, ".card")[0].click()
        press("0")
        wait.until(lambda b: not any((out / "partly").iterdir()))
    finally:
        server.shutdown()
        server.server_close()

