// Small behaviours htmx does not cover. No inline script or handlers anywhere: everything is here.
document.documentElement.classList.add("js");

// Show / hide a secret input.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-toggle-secret]");
  if (!button) return;
  const input = document.getElementById(button.dataset.toggleSecret);
  const showing = input.type === "text";
  input.type = showing ? "password" : "text";
  button.textContent = showing ? "Show" : "Hide";
  button.setAttribute("aria-pressed", String(!showing));
});

// A menu button (the navigation on phones, a row's actions) opens and closes what it controls.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-menu-button]");
  document.querySelectorAll("[data-menu-button][aria-expanded=true]").forEach((open) => {
    if (open !== button && !document.getElementById(open.getAttribute("aria-controls")).contains(event.target)) {
      open.setAttribute("aria-expanded", "false");
      document.getElementById(open.getAttribute("aria-controls")).removeAttribute("data-open");
    }
  });
  if (!button) return;
  const target = document.getElementById(button.getAttribute("aria-controls"));
  const opening = button.getAttribute("aria-expanded") !== "true";
  button.setAttribute("aria-expanded", String(opening));
  opening ? target.setAttribute("data-open", "") : target.removeAttribute("data-open");
});
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  document.querySelectorAll("[data-menu-button][aria-expanded=true]").forEach((button) => {
    button.setAttribute("aria-expanded", "false");
    document.getElementById(button.getAttribute("aria-controls")).removeAttribute("data-open");
    button.focus();
  });
});

// A <select data-autosubmit> submits its form when changed (the team switcher).
document.addEventListener("change", (event) => {
  const select = event.target.closest("select[data-autosubmit]");
  if (select) select.form.requestSubmit();
});

// A form with data-confirm asks first ("Revoke this key?").
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
}, true);

// A slider and its number input move together. A slider with data-steps moves through those
// values (0, 0.01, 0.02, 0.05 ... 10000): small budgets get fine steps, large ones big ones.
const stepsOf = (slider) => (slider.dataset.steps ? slider.dataset.steps.split(",").map(Number) : null);
document.addEventListener("input", (event) => {
  const slider = event.target.closest("input[type=range][data-sync]");
  if (slider) {
    const steps = stepsOf(slider);
    document.getElementById(slider.dataset.sync).value = steps ? steps[Number(slider.value)] : slider.value;
  }
  const number = event.target.closest("input[type=number]");
  if (number) {
    document.querySelectorAll(`input[data-sync="${number.id}"]`).forEach((s) => {
      const steps = stepsOf(s);
      if (!steps) { s.value = number.value; return; }
      const value = Number(number.value);
      let index = steps.findIndex((step) => step >= value);
      s.value = index === -1 ? steps.length - 1 : index;
    });
  }
});

// Filter a list as one types: <input data-filter="ID"> hides the items of #ID ([data-filter-text])
// that do not contain the text, and groups left empty.
document.addEventListener("input", (event) => {
  const input = event.target.closest("input[data-filter]");
  if (!input) return;
  const words = input.value.trim().toLowerCase();
  const list = document.getElementById(input.dataset.filter);
  list.querySelectorAll("[data-filter-text]").forEach((item) => {
    item.hidden = words !== "" && !item.dataset.filterText.toLowerCase().includes(words);
  });
  list.querySelectorAll("[data-filter-group]").forEach((group) => {
    group.hidden = !group.querySelector("[data-filter-text]:not([hidden])");
  });
});

// Reordering a list (fallback order): drag and drop, or the ↑ ↓ Remove buttons for keyboards.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-move]");
  if (!button) return;
  const item = button.closest("li");
  if (button.dataset.move === "up" && item.previousElementSibling) item.after(item.previousElementSibling);
  else if (button.dataset.move === "down" && item.nextElementSibling) item.before(item.nextElementSibling);
  else if (button.dataset.move === "remove") item.remove();
  button.focus();
});
let dragged = null;
document.addEventListener("dragstart", (event) => { dragged = event.target.closest("li[draggable]"); });
document.addEventListener("dragover", (event) => {
  const over = event.target.closest("li[draggable]");
  if (!dragged || !over || over === dragged || over.parentNode !== dragged.parentNode) return;
  event.preventDefault();
  const after = event.clientY > over.getBoundingClientRect().top + over.offsetHeight / 2;
  after ? over.after(dragged) : over.before(dragged);
});
document.addEventListener("dragend", () => { dragged = null; });

// A table wider than the screen scrolls inside its frame: the frame then takes keyboard focus, so
// it scrolls without a mouse too.
const focusableWhenScrolling = () => document.querySelectorAll(".table-wrap").forEach((frame) => {
  if (frame.scrollWidth > frame.clientWidth) frame.setAttribute("tabindex", "0");
  else frame.removeAttribute("tabindex");
});
document.addEventListener("DOMContentLoaded", focusableWhenScrolling);
window.addEventListener("resize", focusableWhenScrolling);
document.addEventListener("htmx:afterSwap", focusableWhenScrolling);
