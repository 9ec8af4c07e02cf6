"""The web console's browser tests: Debian's chromium driven by selenium through chromium-driver.

`make test` runs tests/console/install_browser.sh first, which installs both when missing.
"""
