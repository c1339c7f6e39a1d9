// Buyer details on the viewer page (lmserver.buyers): before a viewer's first order the Buy dialog asks for name,
// e-mail and shipping address once; later orders go straight through, and "edit" in the Buy dialog changes them.
// It stands beside viewer.js without touching it: a capture-phase listener holds the Buy form's submit until the
// details are saved, then submits it again.
const $ = (s) => document.querySelector(s);
const buyForm = $("#buy-form");
const dlg = $("#buyer-dialog");
const form = $("#buyer-form");
const field = (n) => form.elements.namedItem(n); // not form.name: that is the form's own name attribute
let buyer = null;
let ask = true;
let pass = false; // the next Buy submit goes through (details are saved)
let resume = false; // the details dialog was opened by a Buy: submit it again after saving
let loaded = null;
// asked when a Buy dialog first opens (not on page load: a thousand viewers joining cost no extra request)
function load() {
  loaded = loaded || LMS.api("GET", "/api/viewer/buyer").then((r) => { buyer = r.buyer; ask = r.ask; showShipTo(); })
    .catch(() => { ask = false; }); // no viewer identity (yet): the order route answers for itself
  return loaded;
}

function showShipTo() {
  let line = $("#buy-shipto");
  if (!line) {
    line = document.createElement("p");
    line.id = "buy-shipto";
    line.className = "muted small";
    buyForm.insertBefore(line, $("#buy-result"));
  }
  line.hidden = !buyer;
  if (buyer) {
    line.textContent = `Ship to ${buyer.name}, ${buyer.address.split("\n")[0]} · `;
    const edit = document.createElement("a");
    edit.href = "#"; edit.id = "buyer-edit"; edit.textContent = "edit";
    edit.addEventListener("click", (ev) => { ev.preventDefault(); open(false); });
    line.appendChild(edit);
  }
}

function open(fromBuy) {
  resume = fromBuy;
  field("name").value = buyer ? buyer.name : "";
  field("email").value = buyer ? buyer.email : "";
  field("address").value = buyer ? buyer.address : "";
  $("#buyer-intro").hidden = !!buyer;
  $("#buyer-title").textContent = buyer ? "Your details" : "Where should we send it?";
  $("#buyer-save").textContent = fromBuy ? "Save and place order" : "Save";
  $("#buyer-error").hidden = true;
  dlg.showModal();
  field("name").focus();
}

if (buyForm && dlg) {
  document.addEventListener("click", (ev) => { if (ev.target.closest("[data-buy]")) load(); });
  document.addEventListener("submit", async (ev) => {
    if (ev.target !== buyForm || pass) { pass = false; return; }
    if (loaded && (buyer || !ask)) return;
    ev.preventDefault();
    ev.stopImmediatePropagation();
    await load();
    if (buyer || !ask) { pass = true; buyForm.requestSubmit(); return; }
    open(true);
  }, true);
  $("#buyer-cancel").addEventListener("click", () => dlg.close());
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const err = $("#buyer-error");
    const btn = $("#buyer-save");
    btn.disabled = true;
    try {
      const r = await LMS.api("PUT", "/api/viewer/buyer", {
        name: field("name").value, email: field("email").value.trim(), address: field("address").value });
      buyer = r.buyer;
      showShipTo();
      dlg.close();
      if (resume) { pass = true; buyForm.requestSubmit(); }
    } catch (e) {
      err.textContent = e.message; err.hidden = false;
    } finally {
      btn.disabled = false;
    }
  });
}
