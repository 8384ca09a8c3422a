print("dlconvert")
