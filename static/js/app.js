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
