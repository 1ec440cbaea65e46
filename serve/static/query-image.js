// The query image: picked, dropped or pasted, previewed, removed.

import { clearError, showError } from "./messages.js";

const $ = (id) => document.getElementById(id);
const el = {
  file: $("q-image"), zone: $("drop-zone"), preview: $("preview"), img: $("preview-img"),
  name: $("preview-name"), remove: $("remove-image"),
};
const state = { image: null, previewUrl: null };

/** The picture the next search sends, or null. */
export const queryImage = () => state.image;

/** Make `file` the query image (false, with a message, when it is not an image). */
export function setImage(file) {
  if (file.type && !file.type.startsWith("image/")) {
    showError(`“${file.name}” is not an image (${file.type}): `
      + "choose a JPEG, PNG or WebP file.");
    return false;
  }
  clearError();
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  state.image = file;
  state.previewUrl = URL.createObjectURL(file);
  el.img.src = state.previewUrl;
  el.name.textContent = file.name;
  el.preview.hidden = false;
  if (el.file.files[0] !== file) {
    try {  // mirror it in the file input, so the control says what is chosen
      const transfer = new DataTransfer();
      transfer.items.add(file);
      el.file.files = transfer.files;
    } catch { /* older browsers: the preview alone shows it */ }
  }
  return true;
}

function removeImage() {
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  Object.assign(state, { image: null, previewUrl: null });
  el.img.removeAttribute("src");
  el.name.textContent = "";
  el.preview.hidden = true;
  el.file.value = "";
  el.file.focus();
}

el.file.addEventListener("change", () => {
  const file = el.file.files[0];
  if (file && !setImage(file)) el.file.value = "";
});
el.remove.addEventListener("click", removeImage);
el.img.addEventListener("error", () => {
  if (state.previewUrl) el.preview.classList.add("no-preview");
});
el.img.addEventListener("load", () => el.preview.classList.remove("no-preview"));
el.zone.addEventListener("dragover", (event) => {
  event.preventDefault();
  el.zone.classList.add("dragging");
});
el.zone.addEventListener("dragleave", (event) => {
  if (!el.zone.contains(event.relatedTarget)) el.zone.classList.remove("dragging");
});
el.zone.addEventListener("drop", (event) => {
  event.preventDefault();
  el.zone.classList.remove("dragging");
  const file = event.dataTransfer.files[0];
  if (file) setImage(file);
});
// A file dropped beside the zone must not replace the page with the file.
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => event.preventDefault());
document.addEventListener("paste", (event) => {
  const item = Array.from(event.clipboardData?.items || [])
    .find((i) => i.kind === "file" && i.type.startsWith("image/"));
  if (!item) return;  // ordinary text pastes go where they were going
  event.preventDefault();
  const blob = item.getAsFile();
  const ext = (blob.type.split("/")[1] || "png").replace("jpeg", "jpg");
  setImage(new File([blob], blob.name || `pasted.${ext}`, { type: blob.type }));
});
