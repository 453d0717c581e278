package aesmodes

// Published GCM vectors, spaces as in the documents.

type gcmVector struct {
	name, key, iv, pt, aad, ct, tag string
}

// The GCM specification's common inputs (McGrew and Viega, "The
// Galois/Counter Mode of Operation", appendix B).
const (
	specK128 = "feffe9928665731c6d6a8f9467308308"
	specK192 = specK128 + "feffe9928665731c"
	specK256 = specK128 + specK128
	specP    = "d9313225f88406e5a55909c5aff5269a 86a7a9531534f7da2e4c303d8a318a72" +
		"1c3c0c95956809532fcf0e2449a6b525 b16aedf5aa0de657ba637b39"
	specA   = "feedfacedeadbeeffeedfacedeadbeef abaddad2"
	specIV  = "cafebabefacedbaddecaf888"
	specIV5 = "cafebabefacedbad" // 64 bits
	specIV6 = "9313225df88406e555909c5aff5269aa 6a7a9538534f7da1e4c303d2a318a728" +
		"c3c0c95156809539fcf0e2429a6b5254 16aedbf5a0de6a57a637b39b" // 480 bits
)

// gcmSpecVectors are the specification's test cases with 96-bit IVs for
// reference (2, 4, 16) and every one without (5, 6, 11, 12, 17, 18).
var gcmSpecVectors = []gcmVector{
	{"spec 2", "00000000000000000000000000000000", "000000000000000000000000", "00000000000000000000000000000000", "",
		"0388dace60b6a392f328c2b971b2fe78", "ab6e47d42cec13bdf53a67b21257bddf"},
	{"spec 4", specK128, specIV, specP, specA,
		"42831ec2217774244b7221b784d0d49c e3aa212f2c02a4e035c17e2329aca12e 21d514b25466931c7d8f6a5aac84aa05 1ba30b396a0aac973d58e091",
		"5bc94fbc3221a5db94fae95ae7121a47"},
	{"spec 5", specK128, specIV5, specP, specA,
		"61353b4c2806934a777ff51fa22a4755 699b2a714fcdc6f83766e5f97b6c7423 73806900e49f24b22b097544d4896b42 4989b5e1ebac0f07c23f4598",
		"3612d2e79e3b0785561be14aaca2fccb"},
	{"spec 6", specK128, specIV6, specP, specA,
		"8ce24998625615b603a033aca13fb894 be9112a5c3a211a8ba262a3cca7e2ca7 01e4a9a4fba43c90ccdcb281d48c7c6f d62875d2aca417034c34aee5",
		"619cc5aefffe0bfa462af43c1699d050"},
	{"spec 11", specK192, specIV5, specP, specA,
		"0f10f599ae14a154ed24b36e25324db8 c566632ef2bbb34f8347280fc4507057 fddc29df9a471f75c66541d4d4dad1c9 e93a19a58e8b473fa0f062f7",
		"65dcc57fcf623a24094fcca40d3533f8"},
	{"spec 12", specK192, specIV6, specP, specA,
		"d27e88681ce3243c4830165a8fdcf9ff 1de9a1d8e6b447ef6ef7b79828666e45 81e79012af34ddd9e2f037589b292db3 e67c036745fa22e7e9b7373b",
		"dcf566ff291c25bbb8568fc3d376a6d9"},
	{"spec 16", specK256, specIV, specP, specA,
		"522dc1f099567d07f47f37a32a84427d 643a8cdcbfe5c0c97598a2bd2555d1aa 8cb08e48590dbb3da7b08b1056828838 c5f61e6393ba7a0abcc9f662",
		"76fc6ece0f4e1768cddf8853bb2d551b"},
	{"spec 17", specK256, specIV5, specP, specA,
		"c3762df1ca787d32ae47c13bf19844cb af1ae14d0b976afac52ff7d79bba9de0 feb582d33934a4f0954cc2363bc73f78 62ac430e64abe499f47c9b1f",
		"3a337dbf46a792c45e454913fe2ea8f2"},
	{"spec 18", specK256, specIV6, specP, specA,
		"5a8def2f0c9e53f1f75d7853659e2a20 eeb2b22aafde6419a058ab4f6f746bf4 0fc0c3b780f244452da3ebf1c5d82cde a2418997200ef82e44ae7e3f",
		"a44a8266ee1c8eb0c8b5d4cf5ae9f19a"},
}

// gcmCAVPVectors are from NIST's GCM validation vectors (CAVP
// gcmEncryptExtIV128.rsp, Count = 0 of the section named): short tags, with
// IVs of 96, 8 and 1024 bits.
var gcmCAVPVectors = []gcmVector{
	{"CAVP IVlen=96 PTlen=256 AADlen=0 Taglen=112", "c75116c19f5ea4ed1b10bf0eaaebe5a1", "48a53fc17d4300f4a23a5a39",
		"4569944fcde5b3f4ae4d50eb7a0e3ef88dab44b684c737b90aa88cf579bf0558", "",
		"d58b89300c62e0b0ea729d6de39545ea35ddc5a04e22b709f45af532bc67d90d", "c428abd4bf85468d57236ed16d36"},
	{"CAVP IVlen=96 PTlen=0 AADlen=128 Taglen=120", "da0b615656135194ba6d3c851099bc48", "d39d4b4d3cc927885090e6c3",
		"", "e7e5e6f8dac913036cb2ff29e8625e0e", "", "ab967711a5770461724460b07237e2"},
	{"CAVP IVlen=96 PTlen=104 AADlen=128 Taglen=104", "27e3626a8347f252519f3a391712f65a", "e50b6bbe4ac7307f75421a71",
		"bf386209503082f15ed8461ddd", "96fe6e72597f596ae93907a820ba79a8", "34d347fa1b56d2cf691f1ce062", "cb083ec9d63075bea3bba1c0d4"},
	{"CAVP IVlen=96 PTlen=128 AADlen=128 Taglen=120", "89c54b0d3bc3c397d5039058c220685f", "bc7f45c00868758d62d4bb4d",
		"582670b0baf5540a3775b6615605bd05", "48d16cda0337105a50e2ed76fd18e114", "fc2d4c4eee2209ddbba6663c02765e69", "55e783b00156f5da0446e2970b877f"},
	{"CAVP IVlen=1024 PTlen=128 AADlen=128 Taglen=120", "ec20b2dd5a4d6f8d2aa49086a7ef9080",
		"d15fd1d8ba90275826c6b085d9d2a3856e2359e41f2ab3033b6c4a61e412177233afbdd0897d113652e72e37d711627e" +
			"b43636fd7d7513f213f458d89597e330e487adde840c245ce21f3e45d14075c86ee6f70a7dde573dd320786d1ff28ea0" +
			"26c07bfe904dfb904a990123f79a0a32febcc57d2fe529ccd2a393856757065c",
		"7ca608d6dac77682def3e129499d1575", "3abfac97f5e569ed960638002ae32738", "f7c5704950a6b03a77db660769e1204b", "a0d98b0c38599c1bb16354f61b0f00"},
	{"CAVP IVlen=8 PTlen=256 AADlen=128 Taglen=104", "be07c4a0725cc27da0221b4892c959b5", "15",
		"e4f618a23e93cde8b9480a63e0bcb0806f66f47e36f0cb86c932f43291ca4d52", "6f65e713c455988a256d59c754b44f4f",
		"6c21f6f08e77a9cb2e4b7a702270cc07bb1c7225cffaaa9d6a310c1dfd5adf4b", "d3770bc1706d83cd4e936d32bc"},
	// A 64-bit tag is below MinTagSize: refused, but the computation is
	// still checked against the tag's first bytes.
	{"CAVP IVlen=8 PTlen=128 AADlen=160 Taglen=64", "90e625f18f04122c3e0657a2dfe0e1b8", "d9",
		"e2d381298318a2135ca6d01a24d0dfab", "a7f88b0e07672401f86f515404fe5af3e53edcca", "87cbfc064d5584ac1c2b385adc02fde5", "f0260a089fdaaa12"},
}
