//! Browser tests: headless Chromium over WebDriver against the real app.

#[path = "web/app.rs"]
mod app;
#[path = "web/browser.rs"]
mod browser;
#[path = "web/cockpit.rs"]
mod cockpit;
#[path = "web/walkthrough.rs"]
mod walkthrough;
#[path = "web/webdriver.rs"]
mod webdriver;
