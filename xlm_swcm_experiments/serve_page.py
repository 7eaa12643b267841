"""The page of scripts/serve.py in Debian's headless Chromium: start the app, drive it as a person would, screenshot it.

    python -m xlm_swcm_experiments.serve_page --model artifacts/demo/swcm/final --output docs/serve.png

starts the app on a free local port, clicks the first example of each of the model's languages and Translate, and
saves a screenshot of the whole page (the last translation and the list of recent ones, one per language), with a
traditional Mongolian sentence typed into the text box afterwards, untranslated: written top to bottom in the page's
font whatever the model's outputs are (the demo's Mongolian is Cyrillic). The
browser is Debian's `chromium` through its `chromedriver` (`make browser` installs both and the fonts); selenium
drives it. tests/scripts/test_serve.py uses the same helpers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from xlm_swcm_hf.checks import InputError, ScriptArgumentParser, cli_main, require_writable_output
from xlm_swcm_hf.testing import TINY_MULTILINGUAL_TEXTS


ROOT = Path(__file__).resolve().parents[1]
SERVE_SCRIPT = ROOT / "scripts" / "serve.py"
# As root in a container, offline: no sandbox, no GPU, none of the browser's own background connections.
CHROMIUM_ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
WAIT_SECONDS = 180
# Typed into the text box after the translations: traditional Mongolian, which the box then writes top to bottom
# (Tibetan shows in the recent translations; typed beside Mongolian it would be turned on its side with it).
FONT_SAMPLE = next(text for text in TINY_MULTILINGUAL_TEXTS if text[0] == "ᠪ")


class BrowserUnavailable(RuntimeError):
    """Chromium, chromedriver or selenium is missing, or the browser does not start here."""


def chromium_driver(width: int = 1280, height: int = 1500):
    """Debian's chromium through its chromedriver, headless."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise BrowserUnavailable("selenium is not installed (pip install -e '.[dev]')") from None
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not browser or not driver:
        raise BrowserUnavailable("Debian's chromium and chromium-driver are not installed (make browser installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (*CHROMIUM_ARGUMENTS, f"--window-size={width},{height}"):
        options.add_argument(argument)
    try:
        return webdriver.Chrome(service=Service(driver), options=options)
    except Exception as error:  # e.g. a container without the kernel features chromium needs
        raise BrowserUnavailable(f"headless chromium does not start here: {type(error).__name__}: {error}") from None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_app(command: list[str], log_path: Path, cwd=None, env=None, timeout: float = WAIT_SECONDS):
    """Start `command + ["--port", N]` on a free local port and yield its URL once it answers; stop it after."""
    port = free_port()
    with open(log_path, "w+", encoding="utf-8") as log:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    with urllib.request.urlopen(url, timeout=5) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"the app did not start (exit {process.poll()}):\n{log.read()[-3000:]}")
                time.sleep(0.5)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Page:
    """The app's page in the browser, by the element ids scripts/serve.py gives its components."""

    def __init__(self, driver, url: str, timeout: float = WAIT_SECONDS):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver, self.by = driver, By
        self.wait = WebDriverWait(driver, timeout)
        driver.get(url)
        self.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#source textarea"))

    def find(self, selector):
        return self.driver.find_element(self.by.CSS_SELECTOR, selector)

    def find_all(self, selector):
        return self.driver.find_elements(self.by.CSS_SELECTOR, selector)

    def text(self, selector) -> str:
        return self.find(selector).get_attribute("textContent")

    def type(self, text: str) -> None:
        """Replace the source text (a long text goes in through the textarea's input event, not key by key)."""
        from selenium.webdriver.common.keys import Keys

        box = self.find("#source textarea")
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(Keys.DELETE)
        if text:
            self.driver.execute_script(
                "const box = arguments[0]; box.value = arguments[1];"
                "box.dispatchEvent(new Event('input', {bubbles: true}));",
                box,
                text,
            )

    def language(self) -> str:
        return self.find("#language input").get_attribute("value")

    def pick_language(self, code: str) -> None:
        from selenium.common.exceptions import StaleElementReferenceException, TimeoutException

        self.find("#language input").click()
        seen: list[str] = []

        def matching_option(driver):
            # The list is filled (and re-rendered) after it opens: wait for the option rather than read it once.
            try:
                options = driver.find_elements(self.by.CSS_SELECTOR, "ul[role=listbox] li")
                seen[:] = [option.text for option in options]
                return next((option for option in options if option.text.strip().endswith(f"({code})")), False)
            except StaleElementReferenceException:
                return False

        try:
            self.wait.until(matching_option).click()
        except TimeoutException:
            raise AssertionError(f"no language ({code}) among {seen}") from None
        self.wait.until(lambda d: self.language().endswith(f"({code})"))

    def open_decoding(self) -> None:
        def shown(driver=None):
            return any(element.is_displayed() for element in self.find_all("#beams"))

        if not shown():
            self.find("#decoding > button").click()
            self.wait.until(shown)

    def set_number(self, selector: str, value) -> None:
        from selenium.webdriver.common.keys import Keys

        box = self.find(selector)
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(str(value), Keys.TAB)

    def examples(self) -> list:
        """The example rows (clicking one fills in its text and language)."""
        return self.find_all("#examples tbody tr")

    def translate(self) -> tuple[str, str, str]:
        """Click Translate, wait for this request's answer; (translation, message, time and tokens/s)."""
        before = self.find("#status .swcm-status").get_attribute("data-request")
        self.find("#translate").click()
        self.wait.until(
            lambda d: (
                self.find_all("#status .swcm-status")
                and self.find("#status .swcm-status").get_attribute("data-request") != before
            )
        )
        return self.text("#translation .swcm-output"), self.text("#status").strip(), self.text("#stats").strip()

    def screenshot(self, path: str | os.PathLike) -> Path:
        """The whole page (the window grown to its height)."""
        width, outer = self.driver.get_window_size()["width"], self.driver.get_window_size()["height"]
        frame = outer - self.driver.execute_script("return window.innerHeight")  # the window's own bars
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(width, height + frame + 20)
        time.sleep(0.5)  # let the page lay itself out at the new size
        if not self.driver.save_screenshot(os.fspath(path)):
            raise RuntimeError(f"chromium could not save the screenshot {path}")
        return Path(path)


def translate_each_language(page: Page) -> list[dict]:
    """Click the first example of each language shown, then Translate; returns what the page showed."""
    seen, shown = set(), []
    for index in range(len(page.examples())):
        row = page.examples()[index]
        row.click()
        page.wait.until(lambda d: page.find("#source textarea").get_attribute("value"))
        language = page.language()
        if language in seen:
            continue
        seen.add(language)
        output, message, stats = page.translate()
        shown.append({"language": language, "output": output, "message": message, "stats": stats})
    return shown


def main(argv=None) -> int:
    parser = ScriptArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a trained XLM-SWCM folder (with examples: see serve.py)")
    parser.add_argument("--output", required=True, help="the screenshot (PNG)")
    parser.add_argument("--width", type=int, default=1280, help="the browser window's width in pixels")
    args = parser.parse_args(argv)
    if not args.output.endswith(".png"):
        raise InputError(f"--output {args.output} must be a .png file.")
    output = require_writable_output(args.output, "--output", folder=False)
    output.parent.mkdir(parents=True, exist_ok=True)
    log = output.with_suffix(".server.log")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    try:
        driver = chromium_driver(width=args.width)
    except BrowserUnavailable as error:
        raise InputError(str(error)) from None
    try:
        with running_app([sys.executable, str(SERVE_SCRIPT), "--model", args.model], log, env=env) as url:
            page = Page(driver, url)
            if not page.examples():
                raise InputError(f"the page for {args.model} shows no examples; give a folder with test data.")
            for row in translate_each_language(page):
                print(f"{row['language']}: {row['output']!r} ({row['stats']}) {row['message']}".rstrip())
            page.type(FONT_SAMPLE)
            page.screenshot(output)
    finally:
        driver.quit()
    log.unlink(missing_ok=True)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(cli_main(main)())
