// The one money format, as providers.pricing.format_usd writes it: cents from $1 up, two
// significant digits below without trailing zeros past the cents ($0.01, $0.018, $0.0075),
// "$0.00" for nothing. Amounts arrive as exact
// decimal strings and are rounded half-up on their digits, never through binary floats.
window.LLMHub = window.LLMHub || {};
(function () {
  // A non-negative decimal string rounded half-up to `places` decimals.
  const fixed = (text, places) => {
    const [whole, fraction = ""] = text.split(".");
    const digits = BigInt(whole + (fraction + "0".repeat(places + 1)).slice(0, places + 1));
    const rounded = ((digits + 5n) / 10n).toString().padStart(places + 1, "0");
    return places ? rounded.slice(0, -places) + "." + rounded.slice(-places) : rounded;
  };
  const grouped = (text) => {
    const [whole, fraction] = text.split(".");
    return whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",") + "." + fraction;
  };
  window.LLMHub.usd = function (value) {
    if (value === null || value === undefined || value === "") return "unpriced";
    let text = typeof value === "number" ? (/e/i.test(String(value)) ? value.toFixed(20) : String(value)) : String(value);
    const sign = text.startsWith("-") ? "-" : "";
    text = text.replace(/^[-+]/, "");
    if (!/^\d+(\.\d*)?$/.test(text)) return "unpriced";
    const size = Number(text);
    if (size === 0 || size >= 1) return sign + "$" + grouped(fixed(text, 2));
    const leading = (text.split(".")[1] || "").search(/[1-9]/); // zeros before the first digit
    let result = fixed(text, leading + 2);
    if (Number(result) >= 1) return sign + "$" + grouped(fixed(result, 2));
    // No trailing zero past the cents: $0.01 and $0.10, not $0.010 or $0.100.
    result = result.replace(/(\.\d\d\d*?)0+$/, "$1");
    return sign + "$" + result;
  };
})();
