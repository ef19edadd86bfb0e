// heapvis report: the heap-layout scrubber (heapvis' own code, no library).
// Draws one frame of the heap on the canvas, blocks in address order, each
// allocation filled in its category's colour; tints the longest free run blue
// and outlines the fragmentation culprits in red; a slider moves through the frames, hover
// names the allocation under the pointer. `#probe=FRAME:BLOCK` hovers that
// block of that frame once drawn (the browser test uses it).
(function () {
  "use strict";
  var errors = [];
  window.addEventListener("error", function (e) {
    errors.push(String(e.message));
    document.body.setAttribute("data-errors", errors.join(" | "));
  });

  var data = JSON.parse(document.getElementById("layout-data").textContent);
  var canvas = document.getElementById("layout");
  var slider = document.getElementById("frame");
  var caption = document.getElementById("frame-caption");
  var tip = document.getElementById("tip");
  var ctx = canvas.getContext("2d");
  var COLS = 128;
  var CELL = Math.max(3, Math.floor((canvas.width - 2) / COLS));
  var rows = Math.max(1, Math.ceil(data.pool_blocks / COLS));
  canvas.height = rows * CELL + 2;
  var current = null; // the frame drawn: per block, the allocation there (-1 free)

  function str(i) {
    return i >= 0 ? data.strings[i] : null;
  }
  function hex(n) {
    return "0x" + ("00000000" + n.toString(16)).slice(-8);
  }
  function cellRect(block) {
    return [1 + (block % COLS) * CELL, 1 + Math.floor(block / COLS) * CELL];
  }
  function outlineRun(start, length, colour, width) {
    ctx.strokeStyle = colour;
    ctx.lineWidth = width;
    for (var b = start; b < start + length; b++) {
      var p = cellRect(b);
      ctx.strokeRect(p[0] + 0.5, p[1] + 0.5, CELL - 1, CELL - 1);
    }
  }

  function draw(index) {
    var frame = data.frames[index];
    var owner = new Int32Array(data.pool_blocks).fill(-1);
    ctx.fillStyle = "#fcfcfc";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.strokeStyle = "#e2e2e2";
    ctx.lineWidth = 1;
    for (var b = 0; b < data.pool_blocks; b++) {
      var p = cellRect(b);
      ctx.strokeRect(p[0] + 0.5, p[1] + 0.5, CELL - 1, CELL - 1);
    }
    var drawn = 0;
    frame.allocs.forEach(function (id) {
      var a = data.allocs[id];
      var start = Math.floor((a[0] - data.pool_start) / data.block_bytes);
      ctx.fillStyle = data.colors[a[2]] || "#bebebe";
      for (var k = 0; k < a[1] && start + k < data.pool_blocks; k++) {
        var q = cellRect(start + k);
        ctx.fillRect(q[0], q[1], CELL - 1, CELL - 1);
        owner[start + k] = id;
      }
      drawn++;
    });
    // The longest run of free blocks, outlined: what the next large request gets.
    var best = [0, 0];
    var run = 0;
    for (var i = 0; i <= data.pool_blocks; i++) {
      if (i < data.pool_blocks && owner[i] < 0) {
        run++;
      } else {
        if (run > best[1]) best = [i - run, run];
        run = 0;
      }
    }
    ctx.fillStyle = "#cfe2f7";
    for (var f = best[0]; f < best[0] + best[1]; f++) {
      var c = cellRect(f);
      ctx.fillRect(c[0], c[1], CELL - 1, CELL - 1);
    }
    frame.culprits.forEach(function (address) {
      var id = frame.allocs.find(function (x) {
        return data.allocs[x][0] === address;
      });
      if (id === undefined) return;
      var a = data.allocs[id];
      outlineRun(Math.floor((a[0] - data.pool_start) / data.block_bytes), a[1], "#d62728", 2);
    });
    current = owner;
    canvas.setAttribute("data-frame", String(index));
    canvas.setAttribute("data-drawn", String(drawn));
    canvas.setAttribute("data-longest-free-blocks", String(best[1]));
    caption.textContent =
      "snapshot " + frame.snapshot + " (frame " + (index + 1) + " of " + data.frames.length + "): " +
      frame.free + " bytes free, longest free run " + frame.largest_free + " bytes" +
      (frame.moment ? " — " + frame.moment : "");
  }

  function describe(block) {
    var id = current ? current[block] : -1;
    var address = data.pool_start + block * data.block_bytes;
    if (id === undefined || id < 0) return "free block at " + hex(address);
    var a = data.allocs[id];
    var parts = [hex(a[0]) + " " + str(a[3]) + " (" + a[1] * data.block_bytes + " bytes)"];
    if (str(a[4])) parts.push("type " + str(a[4]));
    if (str(a[5])) parts.push("name " + str(a[5]));
    parts.push("held by " + (str(a[6]) || "nothing: garbage, or unknown"));
    parts.push("lives snapshots " + a[7] + "–" + a[8]);
    return parts.join("\n");
  }

  function blockAt(event) {
    var r = canvas.getBoundingClientRect();
    var x = (event.clientX - r.left) * (canvas.width / r.width) - 1;
    var y = (event.clientY - r.top) * (canvas.height / r.height) - 1;
    var col = Math.floor(x / CELL);
    var row = Math.floor(y / CELL);
    if (col < 0 || col >= COLS || row < 0) return -1;
    var b = row * COLS + col;
    return b < data.pool_blocks ? b : -1;
  }

  canvas.addEventListener("mousemove", function (e) {
    var b = blockAt(e);
    if (b < 0) {
      tip.hidden = true;
      return;
    }
    tip.textContent = describe(b);
    tip.setAttribute("data-block", String(b));
    tip.hidden = false;
    tip.style.left = e.pageX + 14 + "px";
    tip.style.top = e.pageY + 14 + "px";
  });
  canvas.addEventListener("mouseleave", function () {
    tip.hidden = true;
  });
  slider.max = String(data.frames.length - 1);
  slider.addEventListener("input", function () {
    draw(Number(slider.value));
  });
  document.querySelectorAll("button[data-snapshot]").forEach(function (button) {
    button.addEventListener("click", function () {
      var s = Number(button.getAttribute("data-snapshot"));
      var i = data.frames.findIndex(function (f) {
        return f.snapshot === s;
      });
      if (i >= 0) {
        slider.value = String(i);
        draw(i);
        canvas.scrollIntoView();
      }
    });
  });

  if (data.frames.length > 0) draw(0);
  var probe = /^#probe=(\d+):(\d+)$/.exec(window.location.hash);
  if (probe && data.frames.length > 0) {
    var f = Math.min(Number(probe[1]), data.frames.length - 1);
    slider.value = String(f);
    draw(f);
    var p = cellRect(Number(probe[2]));
    var r = canvas.getBoundingClientRect();
    var scale = r.width / canvas.width;
    canvas.dispatchEvent(
      new MouseEvent("mousemove", {
        clientX: r.left + (p[0] + CELL / 2) * scale,
        clientY: r.top + (p[1] + CELL / 2) * scale,
        bubbles: true,
      })
    );
  }
  document.body.setAttribute("data-ready", "1");
})();
