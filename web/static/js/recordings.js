// Settings → Recordings (owner): delete a recording's video (DELETE /api/recordings/{id}; 409 while its session is live).
(function () {
  "use strict";
  const err = document.getElementById("recordings-error");
  document.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("[data-delete]");
    if (!btn) return;
    if (!confirm("Delete this recording? Its video file is removed for good.")) return;
    err.hidden = true;
    btn.disabled = true;
    try {
      await LMS.api("DELETE", `/api/recordings/${btn.dataset.delete}`);
      const row = btn.closest("tr");
      row.querySelector(".rec-state").textContent = "deleted";
      row.querySelector(".actions").replaceChildren();
      LMS.toast("Recording deleted");
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
      btn.disabled = false;
    }
  });
})();
