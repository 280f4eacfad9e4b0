// The console's only script (no inline script: the Content-Security-Policy forbids it).
// - Forms with data-confirm ask before they are sent. Loaded in the page's head without `defer`, so
//   that this is in force before any form exists (nothing can be sent unasked while it loads).
// - Progress bars with data-poll follow a long job: every 2 s they ask its JSON state and update.
"use strict";

document.addEventListener("submit", (event) => {
  const question = event.target.dataset && event.target.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

function follow(element) {
  const bar = element.querySelector("progress");
  const text = element.querySelector(".progress-text");
  const status = element.parentElement.querySelector("[data-job-state]");
  const poll = async () => {
    try {
      const response = await fetch(element.dataset.poll, { headers: { Accept: "application/json" } });
      if (!response.ok) {
        return;
      }
      const job = await response.json();
      bar.value = job.percent;
      text.textContent = job.percent + " % " + (job.step || "");
      if (status) {
        status.textContent = job.state_label || job.state;
      }
      if (job.finished) {
        window.location.reload();
        return;
      }
    } catch (error) {
      // The box may be restarting: keep trying.
    }
    window.setTimeout(poll, 2000);
  };
  window.setTimeout(poll, 2000);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".progress[data-poll]").forEach(follow);
});
