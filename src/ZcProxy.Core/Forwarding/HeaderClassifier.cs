using System.Collections.Concurrent;

namespace ZcProxy.Core.Forwarding;

/// <summary>Where System.Net.Http's header collections put a field of a given name.</summary>
internal enum HeaderPlace : byte
{
    /// <summary>The message's own headers (general, request- or response-only, or a custom name).</summary>
    Headers,
    /// <summary>The content's headers (Content-*, Allow, Expires, Last-Modified).</summary>
    Content,
    /// <summary>Neither accepts it: a known header of the other direction (a request's Server, a response's Host).</summary>
    Dropped,
}

/// <summary>
/// How System.Net.Http treats one header name, in a request and in a response, and the name it writes: a known
/// header's canonical spelling, a custom one as it was given (<see cref="NameFor"/>).
/// </summary>
internal sealed record HeaderClass(string? Canonical, HeaderPlace InRequest, HeaderPlace InResponse)
{
    public string NameFor(string given) => Canonical ?? given;
}

/// <summary>
/// The head fast paths (<see cref="DefaultRequestHead"/>, <see cref="DefaultResponseHead"/>) must send what the
/// HttpRequestMessage/HttpResponseMessage path sends, and that path lets System.Net.Http's header collections decide:
/// a known header of the wrong kind is refused (and dropped), a content header lives apart and is written after the
/// others, a known name is written in its canonical spelling. Rather than copy System.Net.Http's internal list of known
/// headers, each name is put to real collections once and the answer is remembered (bounded: header names are
/// chosen by clients and upstreams).
/// </summary>
internal static class HeaderClassifier
{
    private const int MaxRemembered = 4096;
    private static readonly ConcurrentDictionary<string, HeaderClass> Known = new(StringComparer.OrdinalIgnoreCase);

    public static HeaderClass Classify(string name)
    {
        if (Known.TryGetValue(name, out var known)) return known;
        var probed = Probe(name);
        if (Known.Count < MaxRemembered) Known.TryAdd(name, probed);
        return probed;
    }

    private static HeaderClass Probe(string name)
    {
        using var request = new HttpRequestMessage { Content = new HeaderOnlyContent() };
        using var response = new HttpResponseMessage { Content = new HeaderOnlyContent() };
        var inRequest = Place(request.Headers, request.Content.Headers, name, out _);
        var inResponse = Place(response.Headers, response.Content.Headers, name, out _);
        return new HeaderClass(Canonical(name), inRequest, inResponse);
    }

    /// <summary>
    /// A known header is written in its own spelling whatever it was given as, a custom one as given: so a name is known
    /// when its lower- or upper-case form comes back spelled otherwise.
    /// </summary>
    private static string? Canonical(string name)
    {
        foreach (var probe in new[] { name.ToLowerInvariant(), name.ToUpperInvariant() })
        {
            using var request = new HttpRequestMessage { Content = new HeaderOnlyContent() };
            using var response = new HttpResponseMessage { Content = new HeaderOnlyContent() };
            if ((Place(request.Headers, request.Content.Headers, probe, out var written) != HeaderPlace.Dropped
                || Place(response.Headers, response.Content.Headers, probe, out written) != HeaderPlace.Dropped)
                && !string.Equals(written, probe, StringComparison.Ordinal)) return written;
        }
        return null;
    }

    private static HeaderPlace Place(System.Net.Http.Headers.HttpHeaders headers, System.Net.Http.Headers.HttpHeaders content, string name, out string? canonical)
    {
        canonical = null;
        var place = headers.TryAddWithoutValidation(name, "x") ? HeaderPlace.Headers
            : content.TryAddWithoutValidation(name, "x") ? HeaderPlace.Content : HeaderPlace.Dropped;
        var added = place == HeaderPlace.Headers ? headers : place == HeaderPlace.Content ? content : null;
        if (added is not null)
            foreach (var header in added.NonValidated) canonical = header.Key;
        return place;
    }
}
