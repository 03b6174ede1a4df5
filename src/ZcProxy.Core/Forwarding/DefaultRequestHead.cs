using System.Buffers;
using System.Collections.Frozen;
using System.Diagnostics;
using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Primitives;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// The upstream request head of a route with the default transforms (<see cref="DefaultTransforms"/>), written
/// straight from Kestrel's parsed request into a pooled buffer: the same bytes as running the transforms over an
/// HttpRequestMessage and serialising it with <see cref="RequestHeadWriter"/> (a test compares the two), without
/// the message, its header collections, the target URI and the string builder. That is:
/// the request line with the raw target (<see cref="RawPathTransforms"/>) after the destination's path; Host from
/// the destination; the client's fields in Kestrel's order, without YARP's hop-by-hop list, the fields the
/// Connection header names (<see cref="ConnectionOptionsTransforms"/>), Host, Forwarded and the X-Forwarded-* the
/// proxy sets; then X-Forwarded-For (the client's with the peer appended, <see cref="XForwardedForAppend"/>), -Host, -Proto, the trace context (<see cref="TraceContext"/>), the content fields
/// (only with a body) and the framing. When the request is one the transform path treats specially (a path base, a
/// target that is not a plain origin-form path), it returns false and the caller takes the transform path.
/// </summary>
internal static class DefaultRequestHead
{
    /// <summary>Never copied from the client: YARP's hop-by-hop list (<see cref="HopByHopFields"/>), and what the default transforms replace or remove.</summary>
    private static readonly FrozenSet<string> NotCopied = HopByHopFields.Names
        .Concat(["Host", "Forwarded", "X-Forwarded-For", "X-Forwarded-Prefix", "X-Forwarded-Host", "X-Forwarded-Proto"])
        .ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    // Characters a raw target may hold for the fast path: unreserved, sub-delims, ':', '@', '/', '?', '%' (RFC 3986).
    // Anything else (quotes, braces, '#', non-ASCII) is left to System.Uri on the transform path.
    private static readonly SearchValues<char> TargetChars =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/?%");

    /// <returns>False when the transform path must build this head; throws on a field that could split the head.</returns>
    public static bool TryWrite(HttpContext context, DestinationTarget destination, ref RequestBodyFraming framing, HeadBuffer head)
    {
        var request = context.Request;
        if (destination.PathPrefix is not { } prefix || request.PathBase.HasValue) return false;
        if (Target(request, context.Find<IHttpRequestFeature>()?.RawTarget) is not { } target) return false;

        head.AppendLatin1(request.Method);
        head.Append(" "u8);
        head.AppendLatin1(prefix);
        head.AppendLatin1(target.Path);
        head.AppendLatin1(target.Query);
        head.Append(" HTTP/1.1\r\n"u8);
        head.AppendField("Host", destination.HostField);

        var skip = new Skips(context);
        var headers = request.Headers;
        bool bothFramings = headers.ContainsKey("Transfer-Encoding") && headers.ContainsKey("Content-Length");
        bool hasLength = false;
        // The own HTTP/1.1 layer's HeaderDictionary through its struct enumerator: through the interface it is a 56 B box
        // per request (Kestrel's collection keeps one boxed enumerator per request for this).
        var own = headers as HeaderDictionary;
        if (own is not null)
            foreach (var (name, values) in own) hasLength |= AppendField(head, skip, name, values, bothFramings);
        else
            foreach (var (name, values) in headers) hasLength |= AppendField(head, skip, name, values, bothFramings);

        var clientForwardedFor = headers[XForwardedForAppend.Field];
        if (clientForwardedFor.Count == 0)
        {
            if (context.Connection.RemoteIpAddress is { } remote) AppendAddress(head, remote.IsIPv4MappedToIPv6 ? remote.MapToIPv4() : remote); // the common case, allocation-free
        }
        else if (XForwardedForAppend.Value(clientForwardedFor, context.Connection.RemoteIpAddress) is { } forwardedFor)
            head.AppendField(XForwardedForAppend.Field, forwardedFor);
        if (request.Host.HasValue) head.AppendField("X-Forwarded-Host", request.Host.ToUriComponent());
        head.AppendField("X-Forwarded-Proto", request.Scheme);
        if (Activity.Current is { } activity)
            DistributedContextPropagator.Current.Inject(activity, head, static (carrier, name, value) =>
            {
                if (carrier is HeadBuffer buffer && value is not null && HeaderClassifier.Classify(name) is { InRequest: HeaderPlace.Headers } kind)
                    buffer.AppendField(kind.NameFor(name), value);
            });

        if (framing == RequestBodyFraming.ContentLength && !hasLength) framing = RequestBodyFraming.Chunked;
        if (framing != RequestBodyFraming.None)
        {
            bool copyLength = framing == RequestBodyFraming.ContentLength && !bothFramings;
            if (own is not null)
                foreach (var (name, values) in own) AppendContentField(head, skip, name, values, copyLength);
            else
                foreach (var (name, values) in headers) AppendContentField(head, skip, name, values, copyLength);
        }
        if (framing == RequestBodyFraming.Chunked) head.AppendField("Transfer-Encoding", "chunked");
        else if (framing == RequestBodyFraming.None && RequiresContentLength(request.Method)) head.AppendField("Content-Length", "0");
        head.Append("\r\n"u8);
        return true;
    }

    /// <summary>A client field of the head (content fields wait for <see cref="AppendContentField"/>); true for a Content-Length that frames the body.</summary>
    private static bool AppendField(HeadBuffer head, in Skips skip, string name, StringValues values, bool bothFramings)
    {
        if (skip.Contains(name)) return false;
        var kind = HeaderClassifier.Classify(name);
        if (kind.InRequest == HeaderPlace.Content)
            return kind.NameFor(name).Equals("Content-Length", StringComparison.OrdinalIgnoreCase) && !bothFramings;
        if (kind.InRequest == HeaderPlace.Headers) AppendValues(head, kind.NameFor(name), values);
        return false;
    }

    /// <summary>A client content field, for a request with a body (Content-Length only when it is the framing sent).</summary>
    private static void AppendContentField(HeadBuffer head, in Skips skip, string name, StringValues values, bool copyLength)
    {
        if (skip.Contains(name)) return;
        var kind = HeaderClassifier.Classify(name);
        if (kind.InRequest != HeaderPlace.Content) return;
        if (!copyLength && kind.NameFor(name).Equals("Content-Length", StringComparison.OrdinalIgnoreCase)) return;
        AppendValues(head, kind.NameFor(name), values);
    }

    /// <summary>The raw path and query when they provably are what was routed (see <see cref="RawPathTransforms"/>), else null.</summary>
    private static (string Path, string Query)? Target(HttpRequest request, string? rawTarget)
    {
        if (string.IsNullOrEmpty(rawTarget) || rawTarget[0] != '/' || rawTarget.AsSpan().ContainsAnyExcept(TargetChars)) return null;
        int question = rawTarget.IndexOf('?', StringComparison.Ordinal);
        var rawPath = question < 0 ? rawTarget : rawTarget[..question];
        var query = request.QueryString.Value ?? "";
        if (!rawTarget.AsSpan().Contains('%') && !rawPath.Contains("/.", StringComparison.Ordinal))
        {
            // Nothing to decode and no dot segment: the raw path is the routed path exactly when they are equal.
            return string.Equals(rawPath, request.Path.Value, StringComparison.Ordinal) ? (rawPath, query) : null;
        }
        if (!EscapesAreWellFormed(rawTarget)) return null;
        return RawPathTransforms.RawPath(request, rawTarget) is { } decoded ? (decoded, query) : null;
    }

    private static bool EscapesAreWellFormed(string text)
    {
        for (int i = text.IndexOf('%', StringComparison.Ordinal); i >= 0; i = text.IndexOf('%', i + 1))
            if (i + 2 >= text.Length || !char.IsAsciiHexDigit(text[i + 1]) || !char.IsAsciiHexDigit(text[i + 2])) return false;
        return true;
    }

    /// <summary>As the transform path: a value with CR or LF drops the field (YARP), several values are several lines, Cookies are joined.</summary>
    private static void AppendValues(HeadBuffer head, string name, StringValues values)
    {
        for (int i = 0; i < values.Count; i++)
            if (values[i] is { } v && v.AsSpan().IndexOfAny('\r', '\n') >= 0) return;
        if (values.Count == 1)
        {
            head.AppendField(name, values[0]);
            return;
        }
        if (name.Equals("Cookie", StringComparison.OrdinalIgnoreCase))
        {
            head.AppendField(name, string.Join("; ", values.ToArray()));
            return;
        }
        foreach (var value in values) head.AppendField(name, value);
    }

    private static void AppendAddress(HeadBuffer head, IPAddress address)
    {
        Span<char> text = stackalloc char[64];
        if (address.TryFormat(text, out int written)) head.AppendField(XForwardedForAppend.Field, text[..written]);
        else head.AppendField(XForwardedForAppend.Field, address.ToString());
    }

    // Like HttpClient: a bodiless POST/PUT/PATCH still says Content-Length: 0 (see RequestHeadWriter).
    private static bool RequiresContentLength(string method)
        => HttpMethods.IsPost(method) || HttpMethods.IsPut(method) || method.Equals("PATCH", StringComparison.OrdinalIgnoreCase);

    /// <summary>The client's fields that are not copied to this request.</summary>
    private readonly struct Skips
    {
        private static TraceFieldsOf? s_trace;
        private readonly string[]? _traceFields;
        private readonly List<string>? _connectionOptions;

        public Skips(HttpContext context)
        {
            // The trace context is replaced only when there is an activity to propagate (TraceContext.Propagate).
            _traceFields = Activity.Current is null ? null : TraceFields();
            var connection = context.Find<ReceivedConnectionField>()?.Values ?? context.Request.Headers.Connection;
            if (ConnectionOptionsTransforms.MayNameFields(connection)) _connectionOptions = [.. ConnectionOptionsTransforms.Options(connection)];
        }

        public bool Contains(string name)
        {
            if (NotCopied.Contains(name) || name.StartsWith(':')) return true;
            if (_traceFields is not null)
                foreach (var field in _traceFields)
                    if (field.Equals(name, StringComparison.OrdinalIgnoreCase)) return true;
            if (_connectionOptions is not null)
                foreach (var option in _connectionOptions)
                    if (option.Equals(name, StringComparison.OrdinalIgnoreCase)) return true;
            return false;
        }

        /// <summary>The current propagator's fields as an array (enumerating its collection per field would allocate).</summary>
        private static string[] TraceFields()
        {
            var propagator = DistributedContextPropagator.Current;
            var known = Volatile.Read(ref s_trace);
            if (known is null || !ReferenceEquals(known.Propagator, propagator))
            {
                known = new TraceFieldsOf(propagator, [.. propagator.Fields]);
                Volatile.Write(ref s_trace, known);
            }
            return known.Fields;
        }
    }

    private sealed record TraceFieldsOf(DistributedContextPropagator Propagator, string[] Fields);
}
