// The console's only script: ask before a form marked data-confirm is sent (retire, delete,
// deny). Without JavaScript every form still works; it just does not ask.
"use strict";
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
