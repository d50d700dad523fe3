//! Campaigns in the dashboard (issue 21): the API and the pages over HTTP, and in headless
//! Chromium a campaign's first stage run to success and the second stage becoming startable.

#[path = "web/app.rs"]
mod app;
#[path = "web/campaign_browser.rs"]
mod campaign_browser;
#[path = "web/campaign_facts.rs"]
mod campaign_facts;
#[path = "web/campaign_http.rs"]
mod campaign_http;
#[path = "web/webdriver.rs"]
mod webdriver;
