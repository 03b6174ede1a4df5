using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace ZcProxy.Tests.Discovery;

/// <summary>
/// An authoritative-looking DNS server on 127.0.0.1 (UDP, a port from the OS) that answers SRV and A queries from a
/// table the test edits: SRV answers carry their targets' A records in the additional section, as real servers do.
/// <see cref="Silent"/> drops every query (a resolver that is down).
/// </summary>
public sealed class TinyDnsServer : IDisposable
{
    private readonly UdpClient _udp = new(new IPEndPoint(IPAddress.Loopback, 0));
    private readonly CancellationTokenSource _stop = new();
    private readonly object _lock = new();
    private Dictionary<string, List<(ushort Priority, ushort Weight, ushort Port, string Target)>> _srv = new(StringComparer.OrdinalIgnoreCase);
    private Dictionary<string, List<IPAddress>> _a = new(StringComparer.OrdinalIgnoreCase);

    public TinyDnsServer() => _ = ServeAsync();

    public string Server => _udp.Client.LocalEndPoint!.ToString()!;
    public bool Silent { get; set; }


    public void SetSrv(string name, params (ushort Priority, ushort Weight, ushort Port, string Target)[] records)
    {
        lock (_lock) _srv = new(_srv, StringComparer.OrdinalIgnoreCase) { [name] = records.ToList() };
    }

    public void SetA(string name, params IPAddress[] addresses)
    {
        lock (_lock) _a = new(_a, StringComparer.OrdinalIgnoreCase) { [name] = addresses.ToList() };
    }

    private async Task ServeAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            UdpReceiveResult query;
            try { query = await _udp.ReceiveAsync(_stop.Token); }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException) { return; }

            if (Silent) continue;
            var answer = Answer(query.Buffer);
            if (answer is not null) await _udp.SendAsync(answer, query.RemoteEndPoint);
        }
    }

    private byte[]? Answer(byte[] q)
    {
        if (q.Length < 17) return null;
        int at = 12;
        var labels = new List<string>();
        while (at < q.Length && q[at] != 0) { labels.Add(Encoding.ASCII.GetString(q, at + 1, q[at])); at += q[at] + 1; }
        var name = string.Join('.', labels);
        at++;
        ushort type = BinaryPrimitives.ReadUInt16BigEndian(q.AsSpan(at));
        int questionEnd = at + 4;

        var answers = new List<byte[]>();
        var additionals = new List<byte[]>();
        lock (_lock)
        {
            if (type == 33 && _srv.TryGetValue(name, out var srv))
                foreach (var r in srv)
                {
                    var rdata = new List<byte>();
                    rdata.AddRange(U16(r.Priority)); rdata.AddRange(U16(r.Weight)); rdata.AddRange(U16(r.Port)); rdata.AddRange(Name(r.Target));
                    answers.Add(Record([0xC0, 0x0C], 33, rdata.ToArray()));
                    foreach (var ip in _a.GetValueOrDefault(r.Target) ?? []) additionals.Add(Record(Name(r.Target), 1, ip.GetAddressBytes()));
                }
            if (type == 1 && _a.TryGetValue(name, out var a))
                foreach (var ip in a) answers.Add(Record([0xC0, 0x0C], 1, ip.GetAddressBytes()));
        }
        var response = new List<byte>();
        response.AddRange(q.AsSpan(0, 2).ToArray());                 // id
        response.AddRange(new byte[] { 0x85, 0x80 });                 // response, authoritative, recursion desired + available, NOERROR
        response.AddRange(U16(1)); response.AddRange(U16((ushort)answers.Count)); response.AddRange(U16(0)); response.AddRange(U16((ushort)additionals.Count));
        response.AddRange(q.AsSpan(12, questionEnd - 12).ToArray());
        foreach (var r in answers.Concat(additionals)) response.AddRange(r);
        return response.ToArray();
    }

    private static byte[] Record(byte[] name, ushort type, byte[] rdata)
    {
        var r = new List<byte>(name);
        r.AddRange(U16(type)); r.AddRange(U16(1)); r.AddRange(new byte[] { 0, 0, 0, 1 }); // class IN, TTL 1 s
        r.AddRange(U16((ushort)rdata.Length)); r.AddRange(rdata);
        return r.ToArray();
    }

    private static byte[] Name(string name)
    {
        var b = new List<byte>();
        foreach (var label in name.TrimEnd('.').Split('.')) { b.Add((byte)label.Length); b.AddRange(Encoding.ASCII.GetBytes(label)); }
        b.Add(0);
        return b.ToArray();
    }

    private static byte[] U16(ushort v) => [(byte)(v >> 8), (byte)v];

    public void Dispose()
    {
        _stop.Cancel();
        _udp.Dispose();
        _stop.Dispose();
    }
}
