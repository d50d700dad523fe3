//! Browser tests: headless Chromium over WebDriver against the real app.

#[path = "web/app.rs"]
mod app;
#[path = "web/browser.rs"]
mod browser;
#[path = "web/cockpit.rs"]
mod cockpit;
#[path = "web/estate_live.rs"]
mod estate_live;
#[path = "web/walkthrough.rs"]
mod walkthrough;
#[path = "web/webdriver.rs"]
mod webdriver;
