// Every behaviour lives here, never inline: the Content-Security-Policy allows no inline script.

// A <select data-autosubmit> submits its form when changed (the team switch).
document.addEventListener("change", (event) => {
  const select = event.target.closest("select[data-autosubmit]");
  if (select) select.form.submit();
});

// A <form data-confirm="question"> asks before it is submitted.
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

// Show / hide a secret input: the one piece of behaviour htmx does not cover.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-toggle-secret]");
  if (!button) return;
  const input = document.getElementById(button.dataset.toggleSecret);
  const showing = input.type === "text";
  input.type = showing ? "password" : "text";
  button.textContent = showing ? "Show" : "Hide";
  button.setAttribute("aria-pressed", String(!showing));
});

// A slider and its number input move together.
document.addEventListener("input", (event) => {
  const slider = event.target.closest("input[type=range][data-sync]");
  if (slider) document.getElementById(slider.dataset.sync).value = slider.value;
  const number = event.target.closest("input[type=number]");
  if (number) document.querySelectorAll(`input[data-sync="${number.id}"]`).forEach((s) => (s.value = number.value));
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
