using System.Collections;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;

namespace ZcProxy.Core.Transport.Http1;

/// <summary>
/// The response's fields on the own HTTP/1.1 layer: a <see cref="HeaderDictionary"/>, or, for a proxied response whose
/// fields are the upstream's with only the hop-by-hop edits, that head's <see cref="Http1FieldBlock"/> passed through
/// as it is: no copy into the dictionary, and written as bytes encoded once per upstream head. Reads are answered from
/// the block; the first change (a Connection: close, the cache's X-Cache-Status, compression...) copies it into the
/// dictionary, and from then on the response is an ordinary one. So whoever reads or edits the response's fields sees
/// the same thing either way; only what nobody changes is never copied.
/// </summary>
internal sealed class Http1ResponseHeaders : IHeaderDictionary
{
    private readonly HeaderDictionary _fields = new();
    private Http1FieldBlock? _block;

    /// <summary>The block these fields are, while nothing has changed them (then the dictionary is empty).</summary>
    internal Http1FieldBlock? PassedThrough => _block;

    /// <summary>The fields as a dictionary (the block copied into it first, if there is one).</summary>
    internal HeaderDictionary Fields => Own();

    /// <summary>Takes the block as the response's fields: only while the response has none yet.</summary>
    internal bool TryPassThrough(Http1FieldBlock block)
    {
        if (_block is not null || _fields.Count != 0) return false;
        _block = block;
        return true;
    }

    private HeaderDictionary Own()
    {
        if (_block is { } block)
        {
            _block = null;
            foreach (var (name, values) in block.Fields) _fields[name] = values;
        }
        return _fields;
    }

    public StringValues this[string key]
    {
        get => _block is { } block ? Find(block, key) : _fields[key];
        set => Own()[key] = value;
    }

    StringValues IDictionary<string, StringValues>.this[string key]
    {
        get => _block is { } block && block.IndexOf(key) is var i and >= 0 ? block.Fields[i].Value : ((IDictionary<string, StringValues>)Own())[key];
        set => Own()[key] = value;
    }

    public long? ContentLength
    {
        get => _block is { } block ? block.ContentLength : _fields.ContentLength;
        set => Own().ContentLength = value;
    }

    public int Count => _block?.Fields.Length ?? _fields.Count;

    public bool IsReadOnly => false;

    public ICollection<string> Keys => Own().Keys;

    public ICollection<StringValues> Values => Own().Values;

    public bool ContainsKey(string key) => _block is { } block ? block.IndexOf(key) >= 0 : _fields.ContainsKey(key);

    public bool TryGetValue(string key, out StringValues value)
    {
        if (_block is not { } block) return _fields.TryGetValue(key, out value);
        int i = block.IndexOf(key);
        value = i >= 0 ? block.Fields[i].Value : default;
        return i >= 0;
    }

    public bool Contains(KeyValuePair<string, StringValues> item) => ((ICollection<KeyValuePair<string, StringValues>>)Own()).Contains(item);

    public void Add(string key, StringValues value) => Own().Add(key, value);

    public void Add(KeyValuePair<string, StringValues> item) => Own().Add(item);

    public bool Remove(string key) => Own().Remove(key);

    public bool Remove(KeyValuePair<string, StringValues> item) => Own().Remove(item);

    public void Clear()
    {
        _block = null;
        _fields.Clear();
    }

    public void CopyTo(KeyValuePair<string, StringValues>[] array, int arrayIndex) => Own().CopyTo(array, arrayIndex);

    public IEnumerator<KeyValuePair<string, StringValues>> GetEnumerator() => _block is { } block
        ? ((IEnumerable<KeyValuePair<string, StringValues>>)block.Fields).GetEnumerator()
        : ((IEnumerable<KeyValuePair<string, StringValues>>)_fields).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    private static StringValues Find(Http1FieldBlock block, string key)
    {
        int i = block.IndexOf(key);
        return i >= 0 ? block.Fields[i].Value : StringValues.Empty;
    }
}
