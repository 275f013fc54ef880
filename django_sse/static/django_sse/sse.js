/*
 * django_sse: wire page elements to Server-Sent Events streams with data-sse-* attributes.
 * No dependencies and no build step. Documentation: docs/templates.md.
 *
 * GET streams use the browser's EventSource; POST streams, and GET streams that need
 * headers, use fetch() with a parser that follows the same WHATWG rules as the server.
 */
(function () {
  "use strict";
  if (window.DjangoSSE) return; // included twice: the first copy already runs the page

  var SWAPS = ["text", "append", "html", "append-html"];
  var MIN_BACKOFF = 100;
  var MAX_BACKOFF = 30000;
  // A stream open this long worked: a server that ends each stream after that, with no
  // event, is asked again at most about once a second.
  var STEADY = 1000;
  var ERROR_TEXT = 200; // characters of an error response's body that sse:error shows
  // An id a Last-Event-ID header can carry. From a page, a header can carry only Latin-1,
  // which the server reads as UTF-8 (what EventSource sends), and fetch() trims its
  // spaces: any other id goes in the query, as after a fallback.
  var HEADER_ID = /^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/;
  // The id of django_sse.FINISHED: the server says the stream is over.
  var FINISHED_ID = "django-sse:finished";
  var active = new Map(); // connection element -> Connection
  var stopped = new WeakSet(); // elements DjangoSSE.stop() ended, until DjangoSSE.start()

  /* The WHATWG event stream interpretation, fed decoded text in chunks of any size. */
  function EventParser(onEvent, onRetry, lastEventId) {
    this.onEvent = onEvent;
    this.onRetry = onRetry || function () {};
    this.buffer = ""; // the start of a line whose end has not arrived yet
    this.afterCR = false; // a chunk ended in CR: a LF starting the next one is the same newline
    this.data = "";
    this.type = "";
    // The last event id outlives a connection: a reconnect's parser starts from it.
    this.idBuffer = this.lastEventId = lastEventId || "";
  }

  /* Only the new text is searched for line ends: a long line arriving in many chunks
   * costs its length once, not once per chunk. */
  EventParser.prototype.feed = function (text) {
    if (text === "") return; // it must not end a CRLF that is still waiting for its LF
    if (this.afterCR && text.charAt(0) === "\n") text = text.slice(1);
    this.afterCR = false;
    var newline = /\r\n?|\n/g;
    var start = 0;
    var match;
    while ((match = newline.exec(text)) !== null) {
      this.line(this.buffer + text.slice(start, match.index));
      this.buffer = "";
      start = newline.lastIndex;
      // A CR that ends the chunk may be the first half of a CRLF.
      if (match[0] === "\r" && start === text.length) this.afterCR = true;
    }
    this.buffer += text.slice(start);
  };

  EventParser.prototype.line = function (line) {
    if (line === "") return this.dispatch();
    if (line.charAt(0) === ":") return;
    var colon = line.indexOf(":");
    var field = colon < 0 ? line : line.slice(0, colon);
    var value = colon < 0 ? "" : line.slice(line.charAt(colon + 1) === " " ? colon + 2 : colon + 1);
    if (field === "event") this.type = value;
    else if (field === "data") this.data += value + "\n";
    else if (field === "id") {
      if (value.indexOf("\0") < 0) this.idBuffer = value;
    } else if (field === "retry" && /^[0-9]+$/.test(value)) this.onRetry(parseInt(value, 10));
  };

  EventParser.prototype.dispatch = function () {
    // The id counts even for an event without data: a reconnect resumes after it.
    this.lastEventId = this.idBuffer;
    if (this.data === "") {
      this.type = "";
      return;
    }
    var event = { type: this.type || "message", data: this.data.slice(0, -1), lastEventId: this.lastEventId };
    this.data = "";
    this.type = "";
    this.onEvent(event);
  };

  function attr(element, name) {
    return element.getAttribute("data-sse-" + name);
  }

  function flag(element, name) {
    var value = attr(element, name);
    return value !== null && value !== "false";
  }

  function words(value) {
    return (value || "").split(/\s+/).filter(Boolean);
  }

  function jsonAttr(element, name) {
    var value = attr(element, name);
    if (value === null) return null;
    try {
      return JSON.parse(value);
    } catch (error) {
      throw new Error("data-sse-" + name + " is not valid JSON: " + error.message);
    }
  }

  function withQuery(url, name, value) {
    var parsed = new URL(url, window.location.href);
    parsed.searchParams.set(name, value);
    return parsed.href;
  }

  function sameOrigin(url) {
    return new URL(url, window.location.href).origin === window.location.origin;
  }

  /* The value of the cookie called name in a document.cookie string, or null. Names are
   * compared whole: a CSRF_COOKIE_NAME may hold characters (+ . $ |) that a RegExp reads
   * as syntax. */
  function cookie(name, cookies) {
    var pairs = cookies.split(";");
    for (var i = 0; i < pairs.length; i++) {
      var at = pairs[i].indexOf("=");
      if (at < 0 || pairs[i].slice(0, at).trim() !== name) continue;
      var value = pairs[i].slice(at + 1);
      try {
        return decodeURIComponent(value);
      } catch (error) {
        return value; // not percent-encoded after all
      }
    }
    return null;
  }

  // The cookies as the page loaded. A readable CSRF cookie that differs from its value
  // then is a token Django rotated since (a login through fetch(), say), which the token
  // rendered into the page no longer matches. One that never changed may not be Django's
  // current token at all (left from before CSRF_USE_SESSIONS, or another app's on the
  // same host): the rendered token is used then.
  var loadedCookies = document.cookie;

  /* The cookie that holds Django's CSRF token for element's requests, or "" for none:
   * the tag writes CSRF_COOKIE_NAME in data-sse-csrf-cookie, and leaves it out where no
   * page script can read the token (CSRF_COOKIE_HTTPONLY, CSRF_USE_SESSIONS). Hand-written
   * attributes without a token fall back to Django's default cookie. */
  function csrfCookieName(element) {
    var name = attr(element, "csrf-cookie");
    if (name !== null) return name;
    return attr(element, "csrf-token") === null ? "csrftoken" : "";
  }

  var TOKEN_FIELD = "input[name=csrfmiddlewaretoken]";
  var latestField = null; // the token field that came into the page last (scan)

  /* The {% csrf_token %} field whose token element's request sends, when nothing better
   * has one: the element's own form's, else the field the page gained last. After a
   * rotation, only a field rendered since (a form htmx swapped in) holds the current
   * token; the page's first may be from before it. */
  function tokenField(element) {
    var form = element.closest("form");
    var own = form && form.querySelector(TOKEN_FIELD);
    if (own) return own;
    if (latestField && latestField.isConnected) return latestField;
    var fields = document.querySelectorAll(TOKEN_FIELD);
    return fields[fields.length - 1] || null;
  }

  function csrfToken(element) {
    var name = csrfCookieName(element);
    var current = name ? cookie(name, document.cookie) : null;
    if (current && current !== cookie(name, loadedCookies)) return current;
    var field = tokenField(element);
    return attr(element, "csrf-token") || current || (field && field.value);
  }

  var HTML_ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

  // The three forms of an HTTP-date (RFC 9110, 5.6.7): IMF-fixdate, the obsolete RFC 850
  // date and asctime(). Date.parse() alone reads almost anything ("1.5", "-1", "5, 6"
  // from two headers) as some date in 2001, a past one: "retry now".
  var HTTP_DATE = /^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT$|^[A-Z][a-z]{5,8}, \d\d-[A-Z][a-z]{2}-\d\d \d\d:\d\d:\d\d GMT$|^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}$/;

  /* Milliseconds a response's Retry-After asks for (delay-seconds, 0 meaning now, or an
   * HTTP-date; at most an hour), or null when it has none that can be read, which counts
   * as no Retry-After at all. */
  function waitFor(response) {
    var value = response.headers.get("Retry-After") || "";
    var ms = NaN;
    if (/^[0-9]+$/.test(value)) ms = parseInt(value, 10) * 1000;
    // asctime() has no zone: it is GMT too, not the browser's local time.
    else if (HTTP_DATE.test(value)) ms = Date.parse(/GMT$/.test(value) ? value : value + " GMT") - Date.now();
    return isNaN(ms) ? null : Math.min(Math.max(ms, 0), 3600000);
  }

  /* The first ERROR_TEXT characters of an error response's body, for sse:error. Only those
   * are read: the rest of the body (a large error page) is cancelled, never downloaded. */
  function bodyStart(response) {
    if (!response.body) return Promise.resolve("");
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var text = "";
    var next = function () {
      return reader.read().then(function (chunk) {
        if (!chunk.done) text += decoder.decode(chunk.value, { stream: true });
        if (!chunk.done && text.length < ERROR_TEXT) return next();
        reader.cancel().catch(function () {});
        return text.slice(0, ERROR_TEXT);
      });
    };
    // A body cut short still has a start to show.
    return next().catch(function () {
      return text.slice(0, ERROR_TEXT);
    });
  }

  function escapeHTML(text) {
    return text.replace(/[&<>"']/g, function (c) {
      return HTML_ESCAPES[c];
    });
  }

  function stringify(value) {
    if (value === undefined || value === null) return "";
    return typeof value === "object" ? JSON.stringify(value) : String(value);
  }

  /* "{field.path}" takes a value from the JSON data; "{@data}", "{@id}", "{@event}" the
   * event's own; "{{" and "}}" are literal braces. In HTML swaps every value is escaped. */
  function render(format, message, html) {
    return format.replace(/\{\{|\}\}|\{([^{}]*)\}/g, function (token, name) {
      if (token === "{{") return "{";
      if (token === "}}") return "}";
      var value;
      if (name === "@data") value = message.data;
      else if (name === "@id") value = message.lastEventId;
      else if (name === "@event") value = message.type;
      else {
        value = message.json;
        // Only the data's own fields: "{constructor}" is not one.
        name.split(".").forEach(function (key) {
          var has = value !== undefined && value !== null && Object.prototype.hasOwnProperty.call(value, key);
          value = has ? value[key] : undefined;
        });
      }
      value = stringify(value);
      return html ? escapeHTML(value) : value;
    });
  }

  function swap(listener, message) {
    var mode = attr(listener, "swap") || "text";
    if (SWAPS.indexOf(mode) < 0) throw new Error('data-sse-swap="' + mode + '" is not one of ' + SWAPS.join(", "));
    var html = mode === "html" || mode === "append-html";
    var format = attr(listener, "format");
    var content = format === null ? message.data : render(format, message, html);
    var selector = attr(listener, "target");
    var target = selector ? document.querySelector(selector) : listener;
    if (!target) throw new Error('data-sse-target="' + selector + '" matches no element');
    if (mode === "text") target.textContent = content;
    else if (mode === "html") target.innerHTML = content;
    else if (mode === "append") target.appendChild(document.createTextNode(content));
    else target.insertAdjacentHTML("beforeend", content);
    var keep = parseInt(attr(listener, "keep"), 10);
    if (mode.indexOf("append") === 0 && keep >= 0) {
      while (target.childNodes.length > keep) target.removeChild(target.firstChild);
    }
  }

  var LISTENER = "[data-sse-swap],[data-sse-on],[data-sse-format],[data-sse-target]";

  /* The elements that handle events of this connection: the element itself and its
   * descendants with any of the LISTENER attributes, except a nested connection and what
   * is inside it. */
  function listeners(root) {
    var found = root.matches(LISTENER) ? [root] : [];
    root.querySelectorAll(LISTENER).forEach(function (element) {
      if (element.closest("[data-sse-url]") === root) found.push(element);
    });
    return found;
  }

  function listensTo(listener) {
    var names = words(attr(listener, "on"));
    return names.length ? names : ["message"];
  }

  // What a connection reads from its element when it is made: when one of these changes
  // (an htmx morph re-rendering the element for another stream, say), it starts over.
  var DEFINITION = [
    "url", "method", "body", "headers", "json", "close-on", "retry", "transport", "pause-hidden",
    "with-credentials",
  ];

  function definition(element) {
    return JSON.stringify(DEFINITION.map(function (name) {
      return attr(element, name);
    }));
  }

  function Connection(element) {
    this.element = element;
    this.definition = definition(element);
    this.url = attr(element, "url");
    if (!this.url) throw new Error("data-sse-url is empty");
    this.method = (attr(element, "method") || "get").toUpperCase();
    this.headers = jsonAttr(element, "headers");
    this.useFetch = this.method !== "GET" || this.headers !== null || attr(element, "transport") === "fetch";
    this.json = flag(element, "json");
    this.closeOn = words(attr(element, "close-on"));
    var retry = parseInt(attr(element, "retry"), 10);
    this.retry = isNaN(retry) ? 1000 : retry;
    this.query = ""; // a GET form's fields, kept for reconnects
    this.body = undefined; // a form's fields, sent again when the server asks for a retry
    this.lastEventId = "";
    this.failures = 0;
    this.openedAt = 0;
    this.transport = null; // the EventSource or AbortController of the connection in flight
    this.timer = null;
    this.state = "";
    // Only a GET can pause, whichever transport reads it: a POST stopped while hidden could
    // not be resumed without re-sending it.
    this.pauseHidden = flag(element, "pause-hidden") && this.method === "GET";
    this.onVisibility = this.visibilityChanged.bind(this);
    if (this.pauseHidden) document.addEventListener("visibilitychange", this.onVisibility);
  }

  Connection.prototype.emit = function (name, detail, cancelable) {
    var event = new CustomEvent("sse:" + name, { bubbles: true, cancelable: !!cancelable, detail: detail });
    return this.element.dispatchEvent(event);
  };

  Connection.prototype.setState = function (state) {
    this.state = state;
    this.element.setAttribute("data-sse-state", state);
  };

  /* Opens the stream; any connection or pending reconnect of this element ends first,
   * so showing a tab or submitting a form again never leaves two requests open. */
  Connection.prototype.connect = function (body) {
    if (body !== undefined) this.body = body;
    this.disconnect();
    if (this.pauseHidden && document.hidden) return this.setState("paused");
    this.setState(this.failures ? "reconnecting" : "connecting");
    if (this.useFetch) this.fetchStream();
    else this.eventSource();
  };

  Connection.prototype.disconnect = function () {
    clearTimeout(this.timer);
    this.timer = null;
    var transport = this.transport;
    this.transport = null;
    if (transport) transport.close ? transport.close() : transport.abort();
  };

  /* Ends the stream for good: no reconnect until someone connects it again. */
  Connection.prototype.close = function (reason) {
    if (this.state === "closed") return;
    this.disconnect();
    this.failures = 0; // a later start() or submit is a first attempt
    this.setState("closed");
    this.emit("close", { reason: reason });
  };

  Connection.prototype.destroy = function (reason) {
    this.close(reason);
    document.removeEventListener("visibilitychange", this.onVisibility);
    this.element.removeEventListener("submit", this.onSubmit);
    active.delete(this.element);
  };

  Connection.prototype.streamURL = function () {
    if (!this.query) return this.url;
    return this.url + (this.url.indexOf("?") < 0 ? "?" : "&") + this.query;
  };

  Connection.prototype.visibilityChanged = function () {
    var live = ["connecting", "open", "reconnecting"].indexOf(this.state) >= 0;
    if (document.hidden && live) {
      this.disconnect();
      this.setState("paused");
    } else if (!document.hidden && this.state === "paused") {
      this.connect();
    }
  };

  Connection.prototype.opened = function () {
    this.openedAt = Date.now();
    this.setState("open");
    this.emit("open", { url: this.url, transport: this.useFetch ? "fetch" : "eventsource" });
  };

  Connection.prototype.receive = function (message) {
    // An event, not the open response, is what proves the stream works: one that ends
    // before its first event is a failure, and is retried with backoff (scheduleReconnect).
    this.failures = 0;
    // An empty id too: the server reset it, and a reconnect must not send the old one.
    this.lastEventId = message.lastEventId;
    var readable = true;
    if (this.json) {
      try {
        // An event with no data (a bare "done", say) is null rather than an error.
        message.json = message.data === "" ? null : JSON.parse(message.data);
      } catch (error) {
        readable = false;
        this.emit("error", { message: "event data is not JSON: " + error.message, willRetry: false });
      }
    }
    if (readable && this.emit("message", message, true)) {
      var self = this;
      listeners(this.element).forEach(function (listener) {
        if (listensTo(listener).indexOf(message.type) < 0) return;
        try {
          swap(listener, message);
        } catch (error) {
          self.emit("error", { message: error.message, willRetry: false });
        }
      });
    }
    if (this.closeOn.indexOf(message.type) >= 0) this.close("close-event");
    // Without waiting for the 204 the reconnection would get.
    else if (message.type === "finished" && message.lastEventId === FINISHED_ID) this.close("finished");
  };

  /* After a failure: the server's retry, doubled per further failure (from at least
   * MIN_BACKOFF, so that a retry of 0 cannot loop) up to 30 s, with equal jitter so that
   * clients dropped together do not come back together. A stream that was open (it ended,
   * or broke) waits at least MIN_BACKOFF too: with retry: 0, a server that ends each
   * stream at once would otherwise be asked again hundreds of times a second. */
  Connection.prototype.scheduleReconnect = function (message, status, retryAfter) {
    if (this.lasted()) this.failures = 0;
    var base = this.failures ? Math.max(this.retry, MIN_BACKOFF) : this.retry;
    var delay = Math.min(MAX_BACKOFF, base * Math.pow(2, this.failures));
    if (this.failures) delay = delay / 2 + Math.random() * (delay / 2);
    if (this.state === "open") delay = Math.max(delay, MIN_BACKOFF);
    // A server that said when to come back (429 or 503 with Retry-After) is believed; one
    // that keeps saying "now" (0) gets the backoff from its second refusal on.
    if (typeof retryAfter === "number" && (retryAfter > 0 || !this.failures)) delay = retryAfter;
    this.failures += 1;
    this.disconnect();
    this.setState("reconnecting");
    this.emit("error", { message: message, status: status, willRetry: true, delay: Math.round(delay) });
    this.timer = setTimeout(this.connect.bind(this), delay);
  };

  /* Whether the stream now ending was open for STEADY ms. Then it worked, events or not
   * (a quiet stream that a proxy or max_duration ends), and the next one is a first
   * attempt again; one that ends sooner is one more failure. */
  Connection.prototype.lasted = function () {
    return this.state === "open" && Date.now() - this.openedAt >= STEADY;
  };

  Connection.prototype.fail = function (message, status, reason) {
    this.emit("error", { message: message, status: status, willRetry: false });
    this.close(reason || "failed");
  };

  Connection.prototype.eventNames = function () {
    var names = ["message", "finished"].concat(this.closeOn, words(attr(this.element, "events")));
    listeners(this.element).forEach(function (listener) {
      names = names.concat(listensTo(listener));
    });
    return names.filter(function (name, index) {
      return names.indexOf(name) === index;
    });
  };

  /* EventSource delivers only the event names it was asked for: this asks for those of
   * the listeners now inside the element, also ones added after it connected. */
  Connection.prototype.listen = function () {
    var source = this.transport;
    if (!(source instanceof EventSource)) return;
    var self = this;
    this.eventNames().forEach(function (name) {
      if (name === "error" || self.heard.indexOf(name) >= 0) return;
      self.heard.push(name);
      source.addEventListener(name, self.onMessage);
    });
  };

  /* After a stream that delivered an event, the browser reconnects by itself once,
   * honouring the server's retry and sending Last-Event-ID. If that attempt fails too, or
   * the stream ended before its first event, this takes over with backoff: the browser
   * would wait only the server's retry, which may be 0, and ask again and again. A new
   * EventSource cannot send the header, so the id travels as ?lastEventId=. */
  Connection.prototype.eventSource = function () {
    var url = this.streamURL();
    if (this.lastEventId) url = withQuery(url, "lastEventId", this.lastEventId);
    var self = this;
    var source = new EventSource(url, { withCredentials: flag(this.element, "with-credentials") });
    var erred = false;
    var delivered = false; // an event since the last open
    this.transport = source;
    source.onopen = function () {
      erred = delivered = false;
      self.opened();
    };
    var onMessage = function (event) {
      // A stream's event named "open" shares its name with EventSource's own open event,
      // which has no data and is not one.
      if (!(event instanceof MessageEvent)) return;
      if (self.transport !== source) return;
      delivered = true;
      self.receive({ type: event.type, data: event.data, lastEventId: event.lastEventId });
    };
    this.heard = [];
    this.onMessage = onMessage;
    this.listen();
    source.addEventListener("error", function (event) {
      if (self.transport !== source) return;
      // The server's own "error" events share the name; only they carry data.
      if (event instanceof MessageEvent) return onMessage(event);
      if (source.readyState === EventSource.CLOSED) {
        // A status other than 200 (204 included) or a wrong content type, which
        // EventSource keeps to itself: ask again with fetch(), which sees the status and
        // so can tell "not now" (429, 503 with Retry-After) from "never".
        self.useFetch = true;
        return self.fetchStream();
      }
      if (!delivered && !self.lasted()) {
        var opened = self.state === "open";
        return self.scheduleReconnect(opened ? "the stream ended before its first event" : "connection failed");
      }
      if (!erred) {
        erred = true;
        self.setState("reconnecting");
        return self.emit("error", { message: "connection lost", willRetry: true });
      }
      self.scheduleReconnect("reconnection failed");
    });
  };

  /* The request's headers. Header names are case-insensitive, so each name is set once,
   * whatever its case: data-sse-headers replaces the helper's defaults (Accept, and
   * Content-Type for a JSON body), and what only the helper knows replaces data-sse-headers
   * (the id the stream resumes from, the CSRF token). Throws for a name or value the
   * browser cannot send. */
  Connection.prototype.requestHeaders = function (body, token) {
    var headers = new Headers({ Accept: "text/event-stream" });
    // data-sse-body, which is JSON (a form's fields are URLSearchParams, typed by fetch).
    if (typeof body === "string") headers.set("Content-Type", "application/json");
    var own = this.headers || {};
    Object.keys(own).forEach(function (name) {
      headers.set(name, own[name]);
    });
    // Once the stream has an id, it is the one sent: in this header, or in the query
    // (fetchStream) with no header to contradict it.
    if (this.lastEventId) headers.delete("Last-Event-ID");
    if (HEADER_ID.test(this.lastEventId)) headers.set("Last-Event-ID", this.lastEventId);
    if (token) headers.set(attr(this.element, "csrf-header") || "X-CSRFToken", token);
    return headers;
  };

  Connection.prototype.fetchStream = function () {
    var self = this;
    var controller = new AbortController();
    var canReconnect = this.method === "GET";
    var url = this.streamURL();
    if (this.lastEventId && !HEADER_ID.test(this.lastEventId)) {
      url = withQuery(url, "lastEventId", this.lastEventId);
    }
    var token = this.method !== "GET" && sameOrigin(this.url) ? csrfToken(this.element) : null;
    var body = this.body;
    if (body === undefined && this.method !== "GET") body = attr(this.element, "body");
    // Django reads a form's csrfmiddlewaretoken before the header: a field rendered before
    // the token rotated must not outvote the current one.
    if (token && body instanceof URLSearchParams && body.has("csrfmiddlewaretoken")) {
      body = new URLSearchParams(body);
      body.set("csrfmiddlewaretoken", token);
    }
    this.transport = controller;
    var current = function () {
      return self.transport === controller;
    };
    var lost = function (message) {
      if (!current()) return;
      if (canReconnect) self.scheduleReconnect(message);
      else self.fail(message + "; a POST is never sent again on its own", undefined, "lost");
    };
    var request;
    try {
      request = new Request(url, {
        method: this.method,
        headers: this.requestHeaders(body, token),
        body: this.method === "GET" ? undefined : body,
        credentials: flag(this.element, "with-credentials") ? "include" : "same-origin",
        cache: "no-store",
        signal: controller.signal,
      });
    } catch (error) {
      // A header value the browser cannot send, say: asking again would not help.
      return this.fail("the request cannot be sent: " + error.message);
    }
    fetch(request)
      .then(function (response) {
        if (!current()) return;
        if (response.status === 204) return self.close("no-content");
        if (!response.ok) {
          var retryable = response.status >= 500 || response.status === 429 || response.status === 408;
          // Refused before it started anything: even a POST may be sent again then.
          var retryAfter = response.status === 429 || response.status === 503 ? waitFor(response) : null;
          return bodyStart(response).then(function (text) {
            var message = "HTTP " + response.status + (text ? ": " + text : "");
            if (!current()) return;
            if (retryAfter !== null) self.scheduleReconnect(message, response.status, retryAfter);
            else if (retryable && canReconnect) self.scheduleReconnect(message, response.status);
            else self.fail(message, response.status);
          });
        }
        var type = response.headers.get("Content-Type") || "";
        if (type.split(";")[0].trim().toLowerCase() !== "text/event-stream") {
          return self.fail("expected text/event-stream, got " + (type || "no content type"), response.status);
        }
        self.opened();
        return self.read(response.body.getReader(), current).then(function () {
          if (!current()) return;
          if (canReconnect) self.scheduleReconnect("the server ended the stream");
          else self.close("completed");
        });
      })
      .catch(function (error) {
        if (error.name !== "AbortError") lost("connection lost: " + error.message);
      });
  };

  Connection.prototype.read = function (reader, current) {
    var self = this;
    var decoder = new TextDecoder();
    var parser = new EventParser(
      function (message) {
        if (current()) self.receive(message);
      },
      function (retry) {
        self.retry = retry;
      },
      this.lastEventId
    );
    var feed = function (text) {
      parser.feed(text);
      // Also the id of an event without data, which is never dispatched.
      if (current()) self.lastEventId = parser.lastEventId;
    };
    var pump = function () {
      return reader.read().then(function (chunk) {
        if (!current()) return reader.cancel();
        if (chunk.done) return feed(decoder.decode());
        feed(decoder.decode(chunk.value, { stream: true }));
        return pump();
      });
    };
    return pump();
  };

  /* A form connects when submitted, sending its fields; anything else connects at once. */
  function start(element) {
    var connection = active.get(element);
    if (connection) {
      // After close(): anything but a form (which waits for its next submit) connects again.
      if (connection.state === "closed" && element.tagName !== "FORM") connection.connect();
      return connection;
    }
    try {
      connection = new Connection(element);
    } catch (error) {
      element.dispatchEvent(new CustomEvent("sse:error", { bubbles: true, detail: { message: error.message, willRetry: false } }));
      return null;
    }
    active.set(element, connection);
    if (element.tagName === "FORM") {
      connection.onSubmit = function (event) {
        event.preventDefault();
        // With the button that submitted it, as the browser's own submit would.
        var fields = new URLSearchParams(new FormData(element, event.submitter));
        connection.lastEventId = ""; // each submission starts a new stream, not a resumed one
        if (connection.method !== "GET") return connection.connect(fields);
        connection.query = fields.toString();
        connection.connect();
      };
      element.addEventListener("submit", connection.onSubmit);
      connection.setState("idle");
    } else {
      connection.connect();
    }
    return connection;
  }

  /* Ends the element's stream for good: it forgets the element, as when it is removed,
   * and a move in the page (which the helper sees as the element added) does not start it. */
  function stop(element) {
    var connection = active.get(element);
    stopped.add(element);
    if (connection) connection.destroy("stopped");
  }

  /* Ends the stream in flight but keeps the element: a form connects again when next
   * submitted (a chat's Stop button). */
  function close(element) {
    var connection = active.get(element);
    if (connection) connection.close("stopped");
  }

  /* An element the page gained starts its stream. One that only moved (sorting, hx-preserve,
   * a morph) keeps its connection as it is: a stream that ended for good stays ended. */
  function adopt(element) {
    if (!active.has(element) && !stopped.has(element)) start(element);
  }

  function scan(root) {
    // Not an element that came and went before this ran: a POST would send its body.
    if (root.nodeType !== 1 || !root.isConnected) return;
    var fields = root.querySelectorAll(TOKEN_FIELD);
    if (fields.length || root.matches(TOKEN_FIELD)) latestField = fields[fields.length - 1] || root;
    if (root.hasAttribute("data-sse-url")) adopt(root);
    root.querySelectorAll("[data-sse-url]").forEach(adopt);
  }

  /* An attribute the helper reads changed, as an htmx morph (innerMorph, outerMorph)
   * changes them on the element it keeps:
   * - data-sse-on or -events: EventSource must deliver those event names too;
   * - data-sse-state, which the server's HTML never has: the connection's state goes back;
   * - one of DEFINITION: the element starts over with the new values (reason "changed").
   *   One that gained a URL connects, one that lost it stops, one that stop() ended stays so. */
  function changed(record) {
    var element = record.target;
    var name = record.attributeName.slice("data-sse-".length);
    var connection = active.get(element);
    if (name === "on" || name === "events") {
      var around = active.get(element.closest("[data-sse-url]"));
      if (around) around.listen();
    } else if (name === "state") {
      if (connection && attr(element, "state") !== connection.state) connection.setState(connection.state);
    } else if (!connection || connection.definition !== definition(element)) {
      if (connection) connection.destroy("changed");
      if (element.isConnected && element.hasAttribute("data-sse-url")) adopt(element);
    }
  }

  /* Elements that leave the page close their connection and listeners; elements added
   * later (by page code, htmx, a template fragment) start theirs. */
  new MutationObserver(function (records) {
    records.forEach(function (record) {
      if (record.type === "attributes") changed(record);
      else record.addedNodes.forEach(scan);
    });
    var grown = records.filter(function (record) {
      // Elements only: a text swap adds a text node, which cannot be a listener.
      return Array.prototype.some.call(record.addedNodes, function (node) {
        return node.nodeType === 1;
      });
    });
    active.forEach(function (connection, element) {
      if (!element.isConnected) connection.destroy("removed");
      else if (grown.some(function (record) {
        return element.contains(record.target);
      })) connection.listen();
    });
  }).observe(document.documentElement, {
    childList: true,
    subtree: true,
    attributes: true,
    attributeFilter: DEFINITION.concat("state", "on", "events").map(function (name) {
      return "data-sse-" + name;
    }),
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () {
      scan(document.documentElement);
    });
  } else {
    scan(document.documentElement);
  }

  /* DjangoSSE.start(): also an element that stop() ended. */
  function startAgain(element) {
    stopped.delete(element);
    return start(element);
  }

  window.DjangoSSE = { start: startAgain, stop: stop, close: close, EventParser: EventParser };
})();
