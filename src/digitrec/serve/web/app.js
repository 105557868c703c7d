// The drawing page: draw (or upload) a digit, send it to /v1/predict, show the answer and ten probability bars.
"use strict";

const MNIST_SIZE = 28; // the model's input is 28x28
const EXPORT_SIZE = 4 * MNIST_SIZE; // the side of the PNG sent: the server takes it down to 28x28 itself
const BRUSH_WIDTH = 22; // canvas pixels on the 280x280 pad: about MNIST's stroke width once scaled
const DEBOUNCE_MS = 150; // while drawing, ask for a prediction after this pause
const INK = "#111";

const pad = document.getElementById("pad");
const padContext = pad.getContext("2d");
const digitOutput = document.getElementById("digit");
const confidenceText = document.getElementById("confidence");
const unsureBadge = document.getElementById("unsure");
const barsList = document.getElementById("bars");
const seenFigure = document.getElementById("seen");
const seenImage = document.getElementById("seen-image");
const statusLine = document.getElementById("status");
const uploadInput = document.getElementById("upload");
const apiKeyInput = document.getElementById("api-key");
const correctForm = document.getElementById("correct");
const correctInput = document.getElementById("correct-label");
const correctStatus = document.getElementById("correct-status"); // its own line: a later prediction keeps it

let drawing = false;
let hasInk = false;
let lastPoint = null;
let debounceTimer = null;
let requestNumber = 0;
let inFlight = null;
let lastImage = null; // the image of the last prediction, for a correction: { blob, name }

// --- drawing with pointer events (mouse, pen, touch) ---

function padPoint(event) {
  const rect = pad.getBoundingClientRect();
  return {
    x: ((event.clientX - rect.left) * pad.width) / rect.width,
    y: ((event.clientY - rect.top) * pad.height) / rect.height,
  };
}

function strokeTo(point) {
  padContext.beginPath();
  padContext.moveTo(lastPoint.x, lastPoint.y);
  padContext.lineTo(point.x, point.y);
  padContext.stroke();
  lastPoint = point;
}

function startStroke(event) {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  drawing = true;
  hasInk = true;
  lastPoint = padPoint(event);
  strokeTo(lastPoint); // a dot for a tap
}

function continueStroke(event) {
  if (!drawing) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const each of events.length ? events : [event]) strokeTo(padPoint(each));
  predictDrawingSoon(DEBOUNCE_MS);
}

function endStroke() {
  if (!drawing) return;
  drawing = false;
  predictDrawingSoon(0);
}

function setUpPad() {
  padContext.lineWidth = BRUSH_WIDTH;
  padContext.lineCap = "round";
  padContext.lineJoin = "round";
  padContext.strokeStyle = INK;
  pad.addEventListener("pointerdown", startStroke);
  pad.addEventListener("pointermove", continueStroke);
  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);
}

function clearPad() {
  padContext.clearRect(0, 0, pad.width, pad.height);
  hasInk = false;
  clearTimeout(debounceTimer);
  requestNumber++; // an answer still on its way is for a drawing that is gone
  if (inFlight) inFlight.abort();
  showEmpty("Draw a digit to start.");
}

// --- the drawing as a small PNG; the server finds, crops and centres the digit (preprocess.py) ---

function drawingAsCanvas() {
  if (!hasInk) return null;
  const small = document.createElement("canvas");
  small.width = small.height = EXPORT_SIZE;
  const context = small.getContext("2d", { willReadFrequently: true });
  context.imageSmoothingQuality = "high";
  context.drawImage(pad, 0, 0, EXPORT_SIZE, EXPORT_SIZE);
  inkToWhiteOnBlack(context);
  return small;
}

function inkToWhiteOnBlack(context) {
  const image = context.getImageData(0, 0, EXPORT_SIZE, EXPORT_SIZE);
  const pixels = image.data;
  for (let i = 0; i < pixels.length; i += 4) {
    pixels[i] = pixels[i + 1] = pixels[i + 2] = pixels[i + 3]; // MNIST's polarity: white ink on black
    pixels[i + 3] = 255;
  }
  context.putImageData(image, 0, 0);
}

function predictDrawingSoon(delayMs) {
  clearTimeout(debounceTimer);
  debounceTimer = setTimeout(predictDrawing, delayMs);
}

function predictDrawing() {
  const canvas = drawingAsCanvas();
  if (!canvas) return;
  canvas.toBlob((blob) => {
    if (!hasInk) return; // cleared meanwhile
    const form = new FormData();
    form.append("file", blob, "drawing.png");
    lastImage = { blob, name: "drawing.png" };
    requestPrediction(form, "your drawing");
  }, "image/png");
}

function predictUpload() {
  const file = uploadInput.files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file, file.name);
  lastImage = { blob: file, name: file.name };
  requestPrediction(form, file.name);
}

// --- talking to the server ---

async function requestPrediction(form, source) {
  const number = ++requestNumber;
  if (inFlight) inFlight.abort();
  inFlight = new AbortController();
  const headers = {};
  if (apiKeyInput.value.trim()) headers["X-API-Key"] = apiKeyInput.value.trim();
  statusLine.textContent = "Asking the model…";
  try {
    const response = await fetch("/v1/predict", { method: "POST", body: form, headers, signal: inFlight.signal });
    const answer = await response.json().catch(() => null);
    if (number !== requestNumber) return; // a newer request is on its way, or the pad was cleared
    if (!response.ok || answer === null) {
      showError(response.status, answer?.detail);
      return;
    }
    showPrediction(answer, source);
  } catch (error) {
    if (error.name !== "AbortError") statusLine.textContent = `The server did not answer (${error.message}).`;
  }
}

function showError(status, detail) {
  const message = status === 401 ? "This server needs an API key (open “API key” on the left)." : detail;
  statusLine.textContent = `Error ${status}: ${message || "unexpected answer"}`;
}

// --- showing the answer ---

function buildBars() {
  for (let digit = 0; digit < 10; digit++) {
    const item = document.createElement("li");
    item.innerHTML =
      `<span class="label">${digit}</span><span class="track"><span class="fill"></span></span>` +
      `<span class="value">0%</span>`;
    barsList.appendChild(item);
  }
}

function showBars(probabilities, predicted) {
  barsList.querySelectorAll("li").forEach((item, digit) => {
    const percent = probabilities ? probabilities[digit] * 100 : 0;
    item.querySelector(".fill").style.width = `${percent}%`;
    item.querySelector(".value").textContent = `${percent.toFixed(1)}%`;
    item.classList.toggle("top", digit === predicted);
  });
}

function showPrediction(answer, source) {
  digitOutput.textContent = String(answer.digit);
  confidenceText.textContent = `Confidence ${(answer.confidence * 100).toFixed(1)}%`;
  unsureBadge.hidden = !answer.unsure;
  showBars(answer.probabilities, answer.digit);
  seenImage.src = `data:image/png;base64,${answer.input_28x28_png_base64}`;
  seenFigure.hidden = false;
  statusLine.textContent = `Result for ${source}.`;
  correctForm.hidden = false;
}

// --- "that's wrong, it is ...": the image just read and the right answer, kept for `digitrec adapt --from DB` ---

async function sendCorrection(event) {
  event.preventDefault();
  const label = correctInput.value.trim();
  if (!lastImage || !/^[0-9]{1,64}$/.test(label)) {
    correctStatus.textContent = "Type the right digit (or digits) first.";
    return;
  }
  const form = new FormData();
  form.append("file", lastImage.blob, lastImage.name);
  form.append("label", label);
  const headers = {};
  if (apiKeyInput.value.trim()) headers["X-API-Key"] = apiKeyInput.value.trim();
  try {
    const response = await fetch("/v1/corrections", { method: "POST", body: form, headers });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      correctStatus.textContent = `Error ${response.status}: ${answer.detail || "unexpected answer"}`;
      return;
    }
    correctStatus.textContent = `Thank you: stored as correction #${answer.id} (${answer.label}).`;
    correctInput.value = "";
  } catch (error) {
    correctStatus.textContent = `The server did not answer (${error.message}).`;
  }
}

function showEmpty(message) {
  digitOutput.textContent = "–";
  confidenceText.textContent = message;
  unsureBadge.hidden = true;
  seenFigure.hidden = true;
  correctForm.hidden = true;
  statusLine.textContent = "";
  showBars(null, -1);
}

// --- reading a whole number: each digit boxed on the image, unsure ones marked, the number correctable ---

const numberUpload = document.getElementById("number-upload");
const numberCanvas = document.getElementById("number-canvas");
const numberText = document.getElementById("number-text");
const numberDigits = document.getElementById("number-digits");
const numberCorrect = document.getElementById("number-correct");
const numberCorrectInput = document.getElementById("number-correct-label");
const numberStatus = document.getElementById("number-status");
const SURE_COLOUR = "#00a03c"; // as `digitrec read --annotate` draws them
const UNSURE_COLOUR = "#e67800";
const NUMBER_CANVAS_MAX_WIDTH = 640;

function apiHeaders() {
  const headers = {};
  if (apiKeyInput.value.trim()) headers["X-API-Key"] = apiKeyInput.value.trim();
  return headers;
}

async function readNumber() {
  const file = numberUpload.files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file, file.name);
  numberStatus.textContent = "Reading…";
  try {
    const response = await fetch("/v1/read", { method: "POST", body: form, headers: apiHeaders() });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      numberStatus.textContent = `Error ${response.status}: ${answer.detail || "unexpected answer"}`;
      return;
    }
    await showReading(file, answer);
  } catch (error) {
    numberStatus.textContent = `The server did not answer (${error.message}).`;
  }
}

async function showReading(file, reading) {
  const picture = await createImageBitmap(file);
  const scale = Math.min(1, NUMBER_CANVAS_MAX_WIDTH / picture.width);
  numberCanvas.width = Math.round(picture.width * scale);
  numberCanvas.height = Math.round(picture.height * scale);
  const context = numberCanvas.getContext("2d");
  context.drawImage(picture, 0, 0, numberCanvas.width, numberCanvas.height);
  context.lineWidth = 2;
  context.font = "bold 16px sans-serif";
  numberDigits.replaceChildren();
  for (const digit of reading.digits) {
    const [x, y, width, height] = digit.box.map((value) => value * scale);
    const colour = digit.unsure ? UNSURE_COLOUR : SURE_COLOUR;
    context.strokeStyle = context.fillStyle = colour;
    context.strokeRect(x, y, width, height);
    context.fillText(String(digit.digit), x + 2, Math.max(14, y - 3));
    const item = document.createElement("li");
    item.textContent = `${digit.digit}: ${(digit.confidence * 100).toFixed(1)}%${digit.unsure ? " (unsure)" : ""}`;
    item.classList.toggle("unsure", digit.unsure);
    numberDigits.appendChild(item);
  }
  numberCanvas.hidden = false;
  numberText.textContent = reading.text || "(no digits)";
  numberCorrect.hidden = false;
  numberStatus.textContent = reading.problem ? reading.problem : `Read ${file.name}.`;
}

async function sendNumberCorrection(event) {
  event.preventDefault();
  const file = numberUpload.files[0];
  const label = numberCorrectInput.value.trim();
  if (!file || !/^[0-9]{1,64}$/.test(label)) {
    numberStatus.textContent = "Type the right number (digits only) first.";
    return;
  }
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("label", label);
  const response = await fetch("/v1/corrections", { method: "POST", body: form, headers: apiHeaders() });
  const answer = await response.json().catch(() => ({}));
  numberStatus.textContent = response.ok
    ? `Thank you: stored as correction #${answer.id} (${answer.label}).`
    : `Error ${response.status}: ${answer.detail || "unexpected answer"}`;
}

buildBars();
setUpPad();
document.getElementById("clear").addEventListener("click", clearPad);
uploadInput.addEventListener("change", predictUpload);
correctForm.addEventListener("submit", sendCorrection);
numberUpload.addEventListener("change", readNumber);
numberCorrect.addEventListener("submit", sendNumberCorrection);
