// Search forms keep their links short and shareable: fields left empty (no filter) stay out
// of the URL. `<form method="get" data-drop-empty>`.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !("dropEmpty" in form.dataset)) {
    return;
  }
  const emptied = [...form.elements].filter(
    (element) => element.name && !element.disabled && element.value === "",
  );
  // The form's entries are collected right after this event, so disabled fields are left out;
  // they come back at once for a page that stays (a download, the back-forward cache).
  emptied.forEach((element) => (element.disabled = true));
  setTimeout(() => emptied.forEach((element) => (element.disabled = false)), 0);
});
