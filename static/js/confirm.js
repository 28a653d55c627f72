// Forms marked data-confirm="Question?" ask before they are sent (the Content-Security-Policy
// allows no inline onsubmit handler). One delegated listener for the whole page.
document.addEventListener("submit", function (event) {
  var form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.getAttribute("data-confirm"))) {
    event.preventDefault();
  }
});
