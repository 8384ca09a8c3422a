print("dlserve")
