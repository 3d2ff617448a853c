// The comment section's behaviour beyond htmx attributes (kept out of the page: the CSP forbids inline script).
(function () {
  "use strict";

  // Refusals (rate limit, rules, permissions) come back as 4xx with the form and a message to show in place.
  var SHOWN_STATUSES = [403, 409, 422, 429];

  document.addEventListener("htmx:beforeSwap", function (event) {
    var section = event.detail.requestConfig.elt.closest(".comments");
    if (!section) {
      return;
    }
    var status = event.detail.xhr.status;
    if (SHOWN_STATUSES.indexOf(status) !== -1) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
    // One notice at a time: the answer to a post or a refusal brings its own (the thread's notice line or
    // the form's error), so the ones shown before go: other forms' errors and the page's messages.
    if (event.detail.requestConfig.verb === "post" || SHOWN_STATUSES.indexOf(status) !== -1) {
      section.querySelectorAll(".comment-error").forEach(function (error) {
        error.remove();
      });
      document.querySelectorAll(".messages").forEach(function (messages) {
        messages.remove();
      });
    }
  });

  // "Cancel" closes the form opened under a comment; without JavaScript it is a link back to the comment.
  document.addEventListener("click", function (event) {
    var cancel = event.target.closest("[data-comment-cancel]");
    if (!cancel) {
      return;
    }
    var slot = cancel.closest(".comment-slot");
    if (slot) {
      event.preventDefault();
      slot.replaceChildren();
    }
  });

  // A form just loaded under a comment gets the focus, so keyboard readers land in it.
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target.classList && target.classList.contains("comment-slot")) {
      var field = target.querySelector("textarea, input[type=radio], input[type=text], button");
      if (field) {
        field.focus();
      }
    }
  });

  // Recommend and editors' pick answer with the card anew: the button pressed keeps the focus.
  document.addEventListener("htmx:afterSwap", function (event) {
    var config = event.detail.requestConfig;
    var toggle = config && config.elt && config.elt.closest && config.elt.closest("[data-comment-toggle]");
    if (!toggle) {
      return;
    }
    var card = document.querySelector(toggle.getAttribute("hx-target"));
    var button = card && card.querySelector('[data-comment-toggle="' + toggle.dataset.commentToggle + '"] button');
    if (button) {
      button.focus();
    }
  });

  // Live threads: while its tab is visible, an open thread asks every data-poll-seconds how many comments
  // are published, without cookies, so that the page cache answers before sessions and views. More than
  // the heading counts, or a comment newer than the newest it has seen, shows "N new comments — show";
  // "show" loads the thread anew, newest first.
  var live = { timer: 0, polledAt: Date.now(), newest: null, latest: null };

  function liveSlot() {
    return document.getElementById("comment-live");
  }

  function liveInterval(slot) {
    return parseInt(slot.dataset.pollSeconds, 10) * 1000;
  }

  function headingCount() {
    var heading = document.getElementById("comments-heading");
    var found = heading && /\((\d+)\)/.exec(heading.textContent);
    return found ? parseInt(found[1], 10) : null;
  }

  function pollLater() {
    var slot = liveSlot();
    window.clearTimeout(live.timer);
    if (slot) {
      live.timer = window.setTimeout(poll, liveInterval(slot));
    }
  }

  function poll() {
    var slot = liveSlot();
    // A hidden tab asks nothing; it asks again once it is shown.
    if (!slot || document.visibilityState !== "visible") {
      return;
    }
    live.polledAt = Date.now();
    fetch(slot.dataset.liveUrl, { credentials: "omit", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(showNews)
      .catch(function () {
        // A poll that failed is forgotten: the next one asks again.
      })
      .then(pollLater);
  }

  function showNews(news) {
    var slot = liveSlot();
    var shown = headingCount();
    if (!news || !slot || shown === null) {
      return;
    }
    live.latest = news;
    var added = news.count - shown;
    if (live.newest === null && added <= 0) {
      // The thread on the page is the published one: later comments are newer than its newest.
      live.newest = news.newest;
    }
    var newer = live.newest !== null && news.newest !== null && news.newest > live.newest;
    if (added <= 0 && !newer) {
      slot.hidden = true;
      return;
    }
    var count = Math.max(added, 1);
    slot.querySelector(".comment-live-count").textContent = count + (count === 1 ? " new comment" : " new comments");
    slot.hidden = false;
  }

  document.addEventListener("visibilitychange", function () {
    var slot = liveSlot();
    if (slot && document.visibilityState === "visible" && Date.now() - live.polledAt >= liveInterval(slot)) {
      poll();
    }
  });

  // Whatever the reader did in the thread (posted, deleted, sorted) changed what it shows: the next poll
  // takes the newest comment again from what is then published.
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target.closest && event.detail.target.closest(".comments")) {
      live.newest = null;
    }
  });

  document.addEventListener("click", function (event) {
    var show = event.target.closest(".comment-live-show");
    var slot = show && show.closest("#comment-live");
    if (!slot || typeof htmx === "undefined") {
      return;
    }
    event.preventDefault();
    var news = live.latest;
    htmx.ajax("GET", slot.dataset.showUrl, { target: "#comment-thread", swap: "innerHTML" }).then(function () {
      var heading = document.getElementById("comments-heading");
      if (heading && news) {
        heading.textContent = "Comments (" + news.count + ")";
      }
    });
  });

  pollLater();

  // One-click unsubscribe: the page a mail link opens submits itself.
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("form[data-comment-autosubmit]");
    if (form) {
      form.submit();
    }
  });
})();
