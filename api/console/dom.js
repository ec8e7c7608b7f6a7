// Building the page from data without innerHTML: text is always a text node.

/** A `tag` element with `attrs` (attributes) and `children` (nodes or strings). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== "") node.append(child);
  }
  return node;
}

export function clear(node) {
  node.replaceChildren();
}

/** "researcher" -> "Researcher". */
export function describe(name) {
  const text = String(name ?? "");
  return text.charAt(0).toUpperCase() + text.slice(1);
}
