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
