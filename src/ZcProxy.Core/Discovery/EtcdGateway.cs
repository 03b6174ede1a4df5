using System.Net.Http.Json;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace ZcProxy.Core.Discovery;

/// <summary>
/// etcd's v3 API through its JSON gateway (POST /v3/kv/range, /v3/watch), over HttpClient: keys and values are base64,
/// int64s are strings. A watch is one streamed response with one JSON object per line. Chosen over the gRPC client
/// (dotnet-etcd) by measurement; see README, Dependencies.
/// </summary>
internal sealed class EtcdGateway(HttpClient http, Uri endpoint)
{
    public Uri Endpoint => endpoint;

    public sealed record KeyValue(string Key, byte[] Value);

    /// <summary>Every key under the prefix, and the store revision they were read at.</summary>
    public async Task<(long Revision, List<KeyValue> Kvs)> RangeAsync(string prefix, CancellationToken cancellationToken)
    {
        using var response = await http.PostAsJsonAsync(new Uri(endpoint, "v3/kv/range"),
            new { key = B64(prefix), range_end = B64(PrefixEnd(prefix)) }, cancellationToken);
        response.EnsureSuccessStatusCode();
        using var doc = await JsonDocument.ParseAsync(await response.Content.ReadAsStreamAsync(cancellationToken), cancellationToken: cancellationToken);
        var revision = long.Parse(doc.RootElement.GetProperty("header").GetProperty("revision").GetString()!, System.Globalization.CultureInfo.InvariantCulture);
        var kvs = new List<KeyValue>();
        if (doc.RootElement.TryGetProperty("kvs", out var items))
            foreach (var kv in items.EnumerateArray()) kvs.Add(ReadKv(kv));
        return (revision, kvs);
    }

    /// <summary>A cheap request that needs the etcd cluster to answer (a count of the prefix): the liveness probe.</summary>
    public async Task ProbeAsync(string prefix, CancellationToken cancellationToken)
    {
        using var response = await http.PostAsJsonAsync(new Uri(endpoint, "v3/kv/range"),
            new { key = B64(prefix), range_end = B64(PrefixEnd(prefix)), count_only = true }, cancellationToken);
        response.EnsureSuccessStatusCode();
    }

    /// <summary>Changes under the prefix from <paramref name="startRevision"/> on, one batch per watch response.</summary>
    /// <exception cref="EtcdWatchLostException">etcd cancelled the watch (e.g. the revision was compacted): read the range again.</exception>
    public async IAsyncEnumerable<List<(bool Deleted, KeyValue Kv)>> WatchAsync(string prefix, long startRevision,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(endpoint, "v3/watch"))
        {
            Content = JsonContent.Create(new { create_request = new { key = B64(prefix), range_end = B64(PrefixEnd(prefix)), start_revision = startRevision.ToString(System.Globalization.CultureInfo.InvariantCulture) } }),
        };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        response.EnsureSuccessStatusCode();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken), Encoding.UTF8);
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.Length == 0) continue;
            using var doc = JsonDocument.Parse(line);
            if (doc.RootElement.TryGetProperty("error", out var error)) throw new EtcdWatchLostException($"etcd: {error.GetRawText()}");
            var result = doc.RootElement.GetProperty("result");
            if (result.TryGetProperty("canceled", out var canceled) && canceled.GetBoolean())
                throw new EtcdWatchLostException(result.TryGetProperty("compact_revision", out var c) ? $"watch cancelled: revision compacted up to {c.GetString()}" : "watch cancelled by etcd");
            if (!result.TryGetProperty("events", out var events)) continue; // "created", progress notifications
            var batch = new List<(bool, KeyValue)>();
            foreach (var e in events.EnumerateArray())
                batch.Add((e.TryGetProperty("type", out var type) && type.GetString() == "DELETE", ReadKv(e.GetProperty("kv"))));
            yield return batch;
        }
        throw new EtcdWatchLostException("the watch stream ended");
    }

    private static KeyValue ReadKv(JsonElement kv) => new(
        Encoding.UTF8.GetString(Convert.FromBase64String(kv.GetProperty("key").GetString()!)),
        kv.TryGetProperty("value", out var v) ? Convert.FromBase64String(v.GetString()!) : []);

    private static string B64(string s) => Convert.ToBase64String(Encoding.UTF8.GetBytes(s));

    /// <summary>etcd's range end for "every key with this prefix": the prefix with its last byte incremented.</summary>
    internal static string PrefixEnd(string prefix)
    {
        var bytes = Encoding.UTF8.GetBytes(prefix);
        for (int i = bytes.Length - 1; i >= 0; i--)
        {
            if (bytes[i] < 0xff)
            {
                bytes[i]++;
                return Encoding.UTF8.GetString(bytes, 0, i + 1);
            }
        }
        return "\0";
    }
}

internal sealed class EtcdWatchLostException(string message) : Exception(message);
