// Copy buttons: <button data-copy="#token-value"> copies that element's text.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) {
    return;
  }
  const source = document.querySelector(button.dataset.copy);
  if (!source || !navigator.clipboard) {
    return;
  }
  await navigator.clipboard.writeText(source.textContent);
  button.textContent = "Copied";
});
