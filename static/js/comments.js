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

  // One-click unsubscribe: the page a mail link opens submits itself.
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("form[data-comment-autosubmit]");
    if (form) {
      form.submit();
    }
  });
})();
